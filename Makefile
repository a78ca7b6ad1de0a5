PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# amqtt, an independent MQTT test peer, pins its own dependencies: it gets a venv of its
# own so the hub is tested with the newest versions its ranges allow.
AMQTT_VENV := .venv-amqtt
# mypy reads the folders as the jetport.* package they install as, through links.
MYPY_SRC := $(VENV)/mypy-src/jetport

# Each door's tests, run again with the lowest dependency versions pyproject.toml admits.
DOOR_TESTS := tests/unit tests/integration/test_nats_core.py tests/integration/test_jetstream.py \
	tests/integration/test_tls.py tests/integration/test_websocket.py \
	tests/integration/test_mqtt_door.py tests/integration/test_mqtt_websocket.py \
	tests/integration/test_http_api.py tests/integration/test_http_sse.py \
	tests/integration/test_http_monitoring.py tests/integration/test_http_kv_objects.py \
	tests/integration/test_http_schema.py

# Workers for the suite (pytest-xdist; 0: in this process, one test after another).
# `make test WORKERS=2` halves the time on two cores, but a few tests that run against
# nats-server clusters with fixed waits still fail now and then under that load.
WORKERS ?= 0

.PHONY: serve test unit lint bench clean doorcheck lowest compiled

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

$(AMQTT_VENV)/.installed:
	$(PY) -m venv $(AMQTT_VENV)
	$(AMQTT_VENV)/bin/pip install -q 'amqtt>=0.11,<0.13'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/jetport serve

test: $(VENV)/.installed-test $(AMQTT_VENV)/.installed | $(MYPY_SRC)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -rsfE -p no:cacheprovider -n $(WORKERS) --dist loadgroup --durations=30

unit: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

$(MYPY_SRC):
	mkdir -p $(MYPY_SRC)
	for d in core bridges storage api bench; do ln -sfn $(CURDIR)/$$d $(MYPY_SRC)/$$d; done

lint: $(VENV)/.installed-test | $(MYPY_SRC)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/jetport bench --compare

# What a newcomer's `make serve` gets: `pip install .` alone into an empty venv, the
# newest versions the ranges allow; the embedded default must answer on every door, and
# the test extras must not change which runtime versions are installed.
doorcheck:
	rm -rf .venv-fresh
	$(PY) -m venv .venv-fresh
	.venv-fresh/bin/pip install -q .
	.venv-fresh/bin/python tests/doorcheck.py .venv-fresh/bin/jetport
	.venv-fresh/bin/python .ci/same_versions.py

# The lower bounds of the ranges: every door answers and each door's tests pass.
lowest: $(AMQTT_VENV)/.installed
	rm -rf .venv-lowest
	$(PY) -m venv .venv-lowest
	.venv-lowest/bin/pip install -q '.[test]' -c .ci/lowest.txt
	.venv-lowest/bin/python tests/doorcheck.py .venv-lowest/bin/jetport
	.venv-lowest/bin/python -m pytest -q -p no:cacheprovider $(DOOR_TESTS)

# The optional mypyc build ([tool.jetport.mypyc] in pyproject.toml): each listed module
# must have been built as an extension (tests/unit/test_build.py), then every door must
# answer and the unit tests and the NATS and MQTT door tests pass on it.
COMPILED_TESTS := tests/unit tests/integration/test_nats_core.py \
	tests/integration/test_mqtt_door.py
compiled:
	rm -rf .venv-mypyc
	$(PY) -m venv .venv-mypyc
	JETPORT_MYPYC=1 .venv-mypyc/bin/pip install -q '.[test]'
	JETPORT_MYPYC=1 .venv-mypyc/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_build.py
	.venv-mypyc/bin/python tests/doorcheck.py .venv-mypyc/bin/jetport
	JETPORT_MYPYC=1 .venv-mypyc/bin/python -m pytest -q -p no:cacheprovider $(COMPILED_TESTS)

clean:
	rm -rf $(VENV) $(AMQTT_VENV) .venv-fresh .venv-lowest .venv-mypyc data

# The fuzzing campaign: a million generated inputs per parser (NATS and MQTT codecs,
# WebSocket framing, config file, JWT, SCRAM), each under a time limit; exits 1 on any crash or
# hang. tests/unit/test_fuzz_short.py runs a few seconds of the same in the suite.
.PHONY: fuzz
fuzz: $(VENV)/.installed-test
	$(BIN)/python tests/campaigns/fuzz.py --target all --count 1000000

# Reliability campaigns (docs/reliability.md), each with a fixed seed and a Markdown table
# of its figures; exit status 1 on any failure.  tests/integration/test_campaign_*.py run
# short versions in the suite.
.PHONY: killtest abuse soak
# kill -9 of the hub at random moments under load on all four doors, 20 rounds.
killtest: $(VENV)/.installed-test
	$(BIN)/python tests/campaigns/killtest.py --rounds 20
# Hostile clients: slowloris, connect floods, non-reading subscribers, no descriptors left.
abuse: $(VENV)/.installed-test
	$(BIN)/python tests/campaigns/abuse.py
# 30 minutes of mixed traffic, sampling the hub's RSS and descriptors every 10 s.
soak: $(VENV)/.installed-test
	$(BIN)/python tests/campaigns/soak.py --minutes 30
