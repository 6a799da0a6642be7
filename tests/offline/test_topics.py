"""Topics of the offline list: under the region's read-only list subtree, parsed back exactly."""

from __future__ import annotations

import pytest

from firmware.errors import EnvelopeError
from firmware.protocol import topics


def test_list_topics_sit_under_the_list_filter() -> None:
    assert topics.list_manifest_topic("central", "full") == "ft/v1/central/list/manifest/full"
    assert topics.list_chunk_topic("central", "delta", 12, 0) == "ft/v1/central/list/delta/12/0"
    assert topics.list_chunk_filter("central", "full", 7) == "ft/v1/central/list/full/7/+"
    sub = topics.list_filter("central").removesuffix("#")
    for t in (
        topics.list_manifest_topic("central", "delta"),
        topics.list_chunk_topic("central", "full", 3, 41),
    ):
        assert t.startswith(sub)


def test_chunk_topic_round_trips() -> None:
    t = topics.list_chunk_topic("north", "full", 1234, 56)
    assert topics.parse_list_chunk_topic("north", t) == ("full", 1234, 56)


@pytest.mark.parametrize(
    "topic",
    [
        "ft/v1/south/list/full/3/1",  # another region
        "ft/v1/north/list/manifest/full",
        "ft/v1/north/list/part/3/1",
        "ft/v1/north/list/full/0/1",
        "ft/v1/north/list/full/03/1",
        "ft/v1/north/list/full/3/x",
        "ft/v1/north/list/full/3/1/2",
    ],
)
def test_other_topics_are_not_chunk_topics(topic: str) -> None:
    with pytest.raises(EnvelopeError):
        topics.parse_list_chunk_topic("north", topic)


def test_bad_kind_or_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="list kind"):
        topics.list_manifest_topic("north", "partial")
    with pytest.raises(ValueError, match="version"):
        topics.list_chunk_topic("north", "full", 0, 0)
