"""The storage tests.lab.bulk writes is the storage the registry writes for the same pushes: same files, and a
registry serving it answers the same tags, digests and facts (the benchmarks' 100,000 tags rest on this)."""

from __future__ import annotations

from tests.integration.runner import ensure_collection_link
from tests.lab import bulk, seed
from tests.lab.registry import start_registry

SHAPE = bulk.Shape(repositories=2, images=3, tags_per_image=2, prefix="bulk")


def facts_of(lab, names: list[str]) -> dict:
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.module_utils.common import build_client
    from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer

    client = build_client(lab.conn().get)
    try:
        return {name: FactsGatherer(client, 4).tag_details(name, client.list_tags(name)) for name in names}
    finally:
        client.close()


def test_written_storage_answers_as_pushed_storage(tmp_path):
    with start_registry("plain", tmp_path / "pushed") as pushed:
        bulk.push_shape(seed.LabSession(pushed), SHAPE)
        pushed_facts = facts_of(pushed, SHAPE.names())
        pushed_files = bulk.storage_files(pushed.storage_path)
    bulk.registry_workdir(SHAPE, tmp_path / "written", cache=tmp_path / "cache")
    with start_registry("plain", tmp_path / "written") as written:
        session = seed.LabSession(written)
        for r, name in enumerate(SHAPE.names()):
            assert seed.tag_map(session, name) == bulk.expected_tags(SHAPE, r)
        assert seed.catalog(session) == SHAPE.names()
        assert facts_of(written, SHAPE.names()) == pushed_facts
    assert bulk.storage_files(written.storage_path) == pushed_files
    assert len([f for f in pushed_files if f.endswith("/current/link")]) == SHAPE.tags
