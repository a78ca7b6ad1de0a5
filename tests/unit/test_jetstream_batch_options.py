"""``jetstream { limits { batch { ... } } }``: the atomic batch publish limits, read as
nats-server 2.12+ reads them; the rest of its ``limits`` block is refused."""

from __future__ import annotations

import pytest

from jetport.core.config import Options, OptionsError, from_config
from jetport.core.config.file import parse
from jetport.core.jetstream.batch import BatchLimits


def opts_from(text: str) -> Options:
    return from_config(parse(text, "srv.conf"))


def test_batch_limits_default_to_nats_servers() -> None:
    limits = BatchLimits.of(opts_from("jetstream {}"))
    assert (limits.timeout, limits.max_msgs, limits.max_inflight_per_stream,
            limits.max_inflight_total) == (10.0, 1000, 50, 1000)


def test_batch_limits_are_read_from_the_limits_block() -> None:
    opts = opts_from('jetstream { limits { batch { timeout: "500ms", max_msgs: 3,\n'
                     "max_inflight_per_stream: 2, max_inflight_total: 7 } } }")
    limits = BatchLimits.of(opts)
    assert (limits.timeout, limits.max_msgs, limits.max_inflight_per_stream,
            limits.max_inflight_total) == (0.5, 3, 2, 7)


@pytest.mark.parametrize(("block", "text"), [
    ("batch { max_msgs: 0 }", "max_msgs must be positive, got 0"),
    ('batch { timeout: "0s" }', "timeout must be positive"),
    ("batch { max_size: 2 }", 'unknown field "jetstream.limits.batch.max_size"'),
    ("max_ha_assets: 2", '"jetstream.limits.max_ha_assets" is not supported by Jetport'),
])
def test_wrong_or_unsupported_limits_are_refused_with_their_line(block: str, text: str) -> None:
    with pytest.raises(OptionsError) as info:
        opts_from(f"jetstream {{\n  limits {{ {block} }}\n}}")
    assert str(info.value).startswith("srv.conf:2:")
    assert text in str(info.value)
