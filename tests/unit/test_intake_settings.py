"""The request sensor's defaults against Dagster's sensor daemon."""

from fleet_dagster.benchmarks.drain import SENSOR_DAEMON_LOOP_S
from fleet_dagster.deliberation.intake_settings import IntakeSettings


def test_the_default_interval_lets_the_daemon_evaluate_the_sensors_every_loop():
    """The daemon skips a sensor whose last tick started less than its interval ago: at an interval equal to its
    5 s loop, "5 s ago" lands a few milliseconds either side, and the sensors ticked every 10 s about half the
    time (measured on dagster 1.13.27)."""
    intake = IntakeSettings()
    assert intake.interval_s < SENSOR_DAEMON_LOOP_S
    assert 0 < intake.listen_s < SENSOR_DAEMON_LOOP_S  # an idle tick leaves the rest of the loop to Dagster
