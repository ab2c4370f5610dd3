"""mkdocs hook: the command-line reference of docs/cli.md, generated from the argument
parsers when the site is built, so it cannot fall behind the code."""

import os

MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown, page, **kwargs):
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())


def reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal's width
    from pydarknet.cli import build_parser

    parser = build_parser()
    sections = []
    for name, command in parser.commands.items():
        sections.append(f"### pydarknet {name}\n\n```text\n{command.format_help().rstrip()}\n```\n")
        actions = [a for a in command._actions if a.choices and hasattr(a, "_name_parser_map")]
        for action in actions:  # subcommands of a subcommand (patches, zoo)
            for sub, subparser in action.choices.items():
                sections.append(f"#### pydarknet {name} {sub}\n\n```text\n{subparser.format_help().rstrip()}\n```\n")
    return "\n".join(sections)
