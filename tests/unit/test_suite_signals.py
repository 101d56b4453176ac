"""The suite's own process keeps SIGINT and SIGTERM working, however it was started."""

import signal

import dagster as dg


def test_sigterm_still_stops_what_a_later_run_spawns_when_the_suite_runs_in_the_background():
    """A background job (CI's `make test`) starts with SIGINT ignored, and after every run Dagster executes in
    the main thread it gives SIGTERM SIGINT's disposition: the compute-log `tail` processes of later runs then
    ignored SIGTERM, Dagster's cleanup could not stop them, and two outlived each `make test`."""

    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def one_step():
        noop()

    assert one_step.execute_in_process().success
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
