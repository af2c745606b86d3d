"""The test suite: unit/, integration/, faults/, conformance/, and helpers in support/."""
