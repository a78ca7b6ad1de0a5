PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# amqtt, an independent MQTT test peer, pins its own dependencies: it gets a venv of its
# own so the hub is tested with the newest versions its ranges allow.
AMQTT_VENV := .venv-amqtt

.PHONY: serve test lint bench clean

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

test: $(VENV)/.installed-test $(AMQTT_VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-test
	$(BIN)/jetport bench --compare

clean:
	rm -rf $(VENV) $(AMQTT_VENV) data
