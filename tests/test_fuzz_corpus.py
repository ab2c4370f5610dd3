"""The fuzzing corpus as regression tests (tools/fuzz.py, docs/untrusted-input.md):
every input the fuzzer kept, and every input that once found a bug (``crash-*``), runs
through its target again, then a few seeded mutations of them do. Each target runs in a
child process, so a crash fails the test instead of ending the test run."""

import subprocess
import sys

import pytest

from conftest import REPO

CORPUS = REPO / "tests" / "fuzz_corpus"
FUZZ = REPO / "tools" / "fuzz.py"
TARGETS = sorted(p.name for p in CORPUS.iterdir())
MUTATIONS = 60


def test_every_target_has_a_corpus():
    sys.path.insert(0, str(FUZZ.parent))
    from fuzz import TARGETS as ALL
    assert sorted(ALL) == TARGETS


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_without_finding(target):
    run = subprocess.run([sys.executable, str(FUZZ), "replay", target, str(CORPUS / target)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "no finding" in run.stdout, run.stderr[-3000:]


@pytest.mark.parametrize("target", TARGETS)
def test_seeded_mutations_of_the_corpus(target):
    run = subprocess.run([sys.executable, str(FUZZ), "smoke", target, str(CORPUS / target), str(MUTATIONS), "13"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "no finding" in run.stdout, run.stderr[-3000:]
