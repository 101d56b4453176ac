import os

from fleet_dagster.llm.embedded import MAX_SLOTS, EngineSettings, default_threads, engine_settings


def test_the_embedded_engine_never_gets_more_threads_than_cores_nor_slots_out_of_range():
    cores = os.cpu_count() or 1
    assert engine_settings(slots=10_000, threads=10_000) == EngineSettings(slots=MAX_SLOTS, threads=cores)
    assert engine_settings(slots=-3, threads=-3) == EngineSettings(slots=1, threads=1)
    assert engine_settings(slots=4, threads=None) == EngineSettings(slots=4, threads=default_threads())
