"""Source declarations and the file observer."""

from __future__ import annotations

import os
from pathlib import Path

from dbtassets.model.manifest import FreshnessConfig, Node, ResourceType, UniqueId
from dbtassets.model.sources import ObserverKind, SourceDeclaration, load_settings, observe_files

ORDERS = UniqueId("source.p.raw.orders")


def source(name: str, *, meta: dict[str, str] | None = None, loaded_at: str = "", relation: str = "") -> Node:
    return Node(UniqueId(f"source.p.raw.{name}"), name, ResourceType.SOURCE, "p", ("p", "raw", name), "models/s.yml",
                (), "", (), "", source_name="raw", loaded_at_field=loaded_at, relation_name=relation, meta=meta or {})


def test_defaults_come_from_dbt_source_definitions(tmp_path: Path) -> None:
    sources = [
        source("orders", meta={"external_location": "read_csv('data/{name}/*.csv')"},
               relation="read_csv('data/orders/*.csv')"),
        source("events", loaded_at="_loaded_at", relation='"db"."raw"."events"'),
        source("remote", meta={"external_location": "s3://bucket/{name}.parquet"}, relation="'s3://bucket/x.parquet'"),
        source("mystery", relation='"db"."raw"."mystery"'),
    ]
    settings = load_settings(tmp_path, sources)
    by_name = {d.name: d for d in settings.sources.values()}
    assert by_name["raw.orders"].kind is ObserverKind.FILES
    assert by_name["raw.orders"].globs == ("data/orders/*.csv",)
    assert by_name["raw.events"].kind is ObserverKind.QUERY
    assert by_name["raw.events"].query == 'select max(_loaded_at) from "db"."raw"."events"'
    assert by_name["raw.remote"].kind is ObserverKind.NONE  # not local files: no file observer
    assert by_name["raw.mystery"].kind is ObserverKind.NONE
    assert "2 sources have no observer (raw.remote, raw.mystery): " in settings.warnings[0]
    assert settings.unobserved == ("raw.remote", "raw.mystery")
    assert any("raw.orders: no file matches data/orders/*.csv yet" in w for w in settings.warnings)


def test_dbts_loaded_at_query_becomes_the_query_observer(tmp_path: Path) -> None:
    freshness = FreshnessConfig(error_after=(1, "hour"), loaded_at_query="select max(loaded) from raw.events;\n")
    events = Node(UniqueId("source.p.raw.events"), "events", "source", "p", ("p", "raw", "events"), "models/s.yml",
                  (), "", (), "", source_name="raw", loaded_at_field="", relation_name='"db"."raw"."events"',
                  freshness=freshness)
    (declaration,) = load_settings(tmp_path, [events]).sources.values()
    assert declaration.kind is ObserverKind.QUERY and declaration.origin == "loaded_at_query"
    assert declaration.query == "select max(loaded) from raw.events"


def test_dbtassets_yml_overrides_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "dbtassets.yml").write_text(
        "watch:\n  settle: 500ms\n  backoff_initial: 2\n"
        "sources:\n"
        "  raw.orders:\n    files: [landing/a/*.csv, landing/b/**/*.csv]\n"
        "  raw.events:\n    query: select max(id) from events;\n    every: 5m\n"
        "  raw.mystery:\n    reported: true\n"
    )
    settings = load_settings(tmp_path, [source("orders"), source("events"), source("mystery")])
    by_name = {d.name: d for d in settings.sources.values()}
    assert by_name["raw.orders"].globs == ("landing/a/*.csv", "landing/b/**/*.csv")
    assert by_name["raw.events"] == SourceDeclaration(UniqueId("source.p.raw.events"), "raw.events",
                                                      ObserverKind.QUERY, "dbtassets.yml",
                                                      query="select max(id) from events", every=300.0)
    assert by_name["raw.mystery"].kind is ObserverKind.REPORTED
    assert settings.watch.settle == 0.5 and settings.watch.backoff_initial == 2.0


def declaration(*globs: str) -> SourceDeclaration:
    return SourceDeclaration(ORDERS, "raw.orders", ObserverKind.FILES, "test", globs=globs)


def land(directory: Path, name: str, text: str = "a,b\n1,2\n", age: float = 60) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    old = path.stat().st_mtime - age
    os.utime(path, (old, old))
    return path


def test_the_fingerprint_moves_with_new_changed_or_removed_files_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = land(data, "a.csv")
    version = observe_files(tmp_path, declaration("data/*.csv")).data_version
    assert observe_files(tmp_path, declaration("data/*.csv")).data_version == version
    land(data, ".b.csv.tmp")
    land(data, "c.csv.part")
    land(data, "notes.txt")
    assert observe_files(tmp_path, declaration("data/*.csv")).data_version == version  # temp/hidden/unmatched
    second = land(data, "b.csv")
    with_b = observe_files(tmp_path, declaration("data/*.csv"))
    assert with_b.data_version != version
    assert with_b.detail == {"files": 2, "bytes": 16, "newest": "data/b.csv"}
    second.unlink()
    assert observe_files(tmp_path, declaration("data/*.csv")).data_version == version
    land(data, "a.csv", "a,b\n1,3\n")  # same size, rewritten: the modification time differs
    os.utime(first, (first.stat().st_mtime + 5, first.stat().st_mtime + 5))
    assert observe_files(tmp_path, declaration("data/*.csv")).data_version != version


def test_clock_skew_does_not_hide_new_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    land(data, "a.csv")
    version = observe_files(tmp_path, declaration("data/*.csv")).data_version
    future = land(data, "future.csv", age=-3600)  # an mtime an hour ahead
    assert observe_files(tmp_path, declaration("data/*.csv")).data_version != version
    future.unlink()
    land(data, "past.csv", age=10 * 365 * 86400)  # and one from ten years ago
    assert observe_files(tmp_path, declaration("data/*.csv")).data_version != version


def test_a_file_still_being_written_is_left_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    land(data, "a.csv")
    complete = observe_files(tmp_path, declaration("data/*.csv")).data_version
    growing = data / "b.csv"
    growing.write_text("a,b\n")

    def writer_appends(seconds: float) -> None:
        with growing.open("a") as f:
            f.write("1,2\n")

    observation = observe_files(tmp_path, declaration("data/*.csv"), settle=0.5, sleep=writer_appends)
    assert observation.data_version == complete
    assert observation.detail["in_progress"] == ["data/b.csv"]
    # Once it stops changing it counts.
    observation = observe_files(tmp_path, declaration("data/*.csv"), settle=0.5, sleep=lambda s: None)
    assert observation.data_version != complete


def test_files_known_to_be_in_progress_are_left_out_without_waiting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    land(data, "a.csv")
    complete = observe_files(tmp_path, declaration("data/*.csv")).data_version
    (data / "b.csv").write_text("a,b\n")

    def no_sleep(seconds: float) -> None:
        raise AssertionError("the watcher's knowledge of open files replaces the second look")

    observation = observe_files(tmp_path, declaration("data/*.csv"), sleep=no_sleep, in_progress={"data/b.csv"})
    assert observation.data_version == complete
