"""The high-level API, above the runtime and the transforms: models by name (the zoo,
which fetches and converts them) and what is done with them (predict, detect,
classify, their streams)."""
