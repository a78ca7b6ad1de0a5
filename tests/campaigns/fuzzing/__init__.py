"""Fuzzing Jetport's parsers: a shared engine (:mod:`.engine`), byte and text mutators
(:mod:`.mutate`) and one module per parser, each exposing a :class:`.engine.Target`."""
