"""A few seconds of each fuzz campaign (``tests/campaigns/fuzz.py`` runs a million inputs).

Each parser gets a fixed, seeded set of inputs, mostly valid ones damaged, and must turn
every one into results or its own error type within a second; the declared size limits
must hold against oversized length prefixes.  A failure prints each distinct crash or
hang with a standalone reproducer.
"""

from __future__ import annotations

import pytest
from campaigns.fuzz import DEFAULT_SEED
from campaigns.fuzzing import conf, jwt, mqtt, nats, scram, ws
from campaigns.fuzzing.engine import Target, campaign, summary

#: Inputs per target: about two seconds each on one core.
COUNTS = {"nats": 20_000, "mqtt": 20_000, "ws": 8_000, "conf": 6_000, "jwt": 5_000,
          "scram": 3_000}


def fuzz(target: Target) -> None:
    report = campaign(target, COUNTS[target.name], DEFAULT_SEED, soft_limit=1.0,
                      hard_limit=5.0, limits=False)
    assert report.inputs == COUNTS[target.name]
    if not report.ok:
        pytest.fail(summary(report, target.reproducer), pytrace=False)


def test_nats_codec_turns_any_input_into_events_or_errors() -> None:
    fuzz(nats.TARGET)


def test_mqtt_codec_turns_any_input_into_packets_or_protocol_errors() -> None:
    fuzz(mqtt.TARGET)


def test_websocket_framing_reports_bad_frames_as_protocol_errors() -> None:
    fuzz(ws.TARGET)


def test_config_reader_raises_only_conf_errors_and_options_only_options_errors() -> None:
    fuzz(conf.TARGET)


def test_jwt_decoding_raises_only_jwt_errors() -> None:
    fuzz(jwt.TARGET)


def test_scram_steps_raise_only_scram_errors() -> None:
    fuzz(scram.TARGET)


@pytest.mark.parametrize("target", [nats.TARGET, mqtt.TARGET, ws.TARGET], ids=lambda t: t.name)
def test_oversized_length_prefixes_are_refused_before_anything_is_buffered(
        target: Target) -> None:
    assert target.limit_checks() == []
