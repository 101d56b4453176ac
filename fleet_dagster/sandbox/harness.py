"""The harness that runs a solution's tests INSIDE the sandbox (bubblewrap.py starts it there).

Trusted code, standard library only: it runs under the sandbox's system Python as
`python3 -I -S -B /harness/harness.py CONFIG_FD RESULT_FD` and is the only code of the fleet in the sandbox
(it never imports fleet_dagster; the runner imports it only for its constants). Before any model code loads it
reads its configuration, the run's secret included, from CONFIG_FD and closes it, moves RESULT_FD out of the
way of ordinary prints, limits itself (memory, CPU time, processes, file size, core dumps, open files; soft and
hard alike, so model code cannot raise them again) and writes STARTED to RESULT_FD: the runner's proof that
the sandbox started. Then it compiles the solution (/work/<module>.py) and the test file, runs them as modules
<module> and test_<module>, calls the test file's test_* functions in definition order (pytest is not in the
sandbox: a stand-in `pytest` module gives raises, approx, fail and mark.parametrize), and writes one
document to RESULT_FD: the secret, a newline, and JSON ({"setup_error": ..., "tests": [...], "not_run": n}).
It then exits at once (os._exit): no atexit hook, finalizer or thread of the model's runs after its report.

What the sandbox does not protect against. The model's code runs in this process, so code written against
this harness can forge its report: read the secret out of the process's memory (main()'s frame, gc), write a
document of its own to the result fd and exit, or patch what the harness itself calls once the tests have run
(json's encoder classes, builtins). The harness defeats the casual forms only: it keeps its own functions, its
writer and encoder in local variables bound before model code runs (replacing `__main__`'s names or
`json.dumps` changes nothing), decides failures with its own reference to AssertionError (replacing
`builtins.AssertionError` changes nothing), and a document written without the secret, or before the
harness's own, makes the whole report unreadable: errored, never passed. Nor does the sandbox judge the tests:
a test without asserts passes, whatever the solution does.
"""

import contextlib
import json
import math
import os
import re
import resource
import sys
import traceback
import types

STARTED = b"fleet harness started\n"
SCRATCH = "/work"
# Where the result fd moves: above RLIMIT_NOFILE, so no file model code opens ever takes its number.
RESULT_FD = 255
OPEN_FILES = 64
_UNSUPPORTED = (types.CoroutineType, types.GeneratorType)


def main() -> None:
    config = _read_config(int(sys.argv[1]))
    out = _move_fd(int(sys.argv[2]))
    # Bound before model code runs: what it does to this module's names or to json.dumps no longer matters.
    write, write_all, run = os.write, _write_all, _run
    encode = json.JSONEncoder(ensure_ascii=True).encode
    nonce = config["nonce"].encode("ascii")
    _limit(config["limits"])
    write_all(write, out, STARTED)
    report = run(config)  # the model's code runs in here
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        # os._exit drops buffered prints; a stream the model closed or replaced loses its own.
        with contextlib.suppress(BaseException):
            if stream is not None:
                stream.flush()
    write_all(write, out, nonce + b"\n" + encode(report).encode("ascii"))
    os._exit(0)


def _read_config(fd: int) -> dict:
    with os.fdopen(fd, "rb") as config:
        return json.loads(config.read())


def _move_fd(fd: int) -> int:
    if fd != RESULT_FD:
        os.dup2(fd, RESULT_FD, inheritable=False)
        os.close(fd)
    os.set_inheritable(RESULT_FD, False)
    return RESULT_FD


def _write_all(write, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[write(fd, view) :]


def cpu_seconds(wall_s: float) -> int:
    """The CPU time limit of a run: past its wall limit, which the runner enforces first for one busy thread."""
    return math.ceil(wall_s) + 1


def _limit(limits: dict) -> None:
    wanted = {
        resource.RLIMIT_AS: limits["memory_mb"] * 1024 * 1024,
        resource.RLIMIT_CPU: cpu_seconds(limits["wall_s"]),
        # Counted per user in the sandbox's own user namespace: each sandbox has its own budget.
        resource.RLIMIT_NPROC: limits["processes"],
        resource.RLIMIT_FSIZE: limits["output_bytes"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: OPEN_FILES,
    }
    for which, value in wanted.items():
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _run(config: dict) -> dict:
    """The report of the run. Both files are compiled before either runs; what the harness uses once model code
    has run (its own functions, exec, AssertionError) is bound here, before."""
    describe, run_code, assertion_error, unsupported, cases_of = _describe, exec, AssertionError, _UNSUPPORTED, _cases
    limit, max_tests, max_name = config["max_message_chars"], config["max_tests"], config["max_name_chars"]
    sys.path.insert(0, SCRATCH)
    sys.modules["pytest"] = _pytest_stand_in()  # before model code: what it does to this name changes nothing
    stage = "solution"
    try:
        solution, solution_code = _prepare(config["module"])
        stage = "tests"
        tests, tests_code = _prepare(f"test_{config['module']}")
        stage = "solution"
        run_code(solution_code, solution.__dict__)
        stage = "tests"
        run_code(tests_code, tests.__dict__)
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: exiting at import ran no test
        error = {"stage": stage, "error": describe(exc, 100, name_only=True), "message": describe(exc, limit)}
        return {"setup_error": error, "tests": [], "not_run": 0}
    found = [
        (name, test)
        for name, test in list(tests.__dict__.items())
        if isinstance(name, str) and name.startswith("test_") and isinstance(test, types.FunctionType)
    ]
    cases = [case for name, test in found for case in cases_of(name, test)]
    outcomes = []
    for name, test, arguments in cases[:max_tests]:
        outcome, message = "passed", None
        try:
            returned = test(**arguments)
            if isinstance(returned, unsupported):
                returned.close()
                raise TypeError("async and generator tests are not supported: a test is a plain function")
        except assertion_error as exc:
            outcome, message = "failed", describe(exc, limit)
        except BaseException as exc:  # noqa: BLE001 - whatever a test raises (SystemExit too) is its error
            outcome, message = "errored", describe(exc, limit)
        outcomes.append({"name": name[:max_name], "outcome": outcome, "message": message})
    return {"setup_error": None, "tests": outcomes, "not_run": max(0, len(cases) - max_tests)}


def _cases(name: str, test: types.FunctionType) -> list[tuple[str, types.FunctionType, dict]]:
    """A test function's calls: one, or one per parameter set of its @pytest.mark.parametrize (name[i])."""
    parametrized = test.__dict__.get(PARAMETRIZE)
    if not isinstance(parametrized, tuple):
        return [(name, test, {})]
    names, values = parametrized
    return [(f"{name}[{index}]", test, dict(zip(names, case, strict=False))) for index, case in enumerate(values)]


PARAMETRIZE = "__fleet_parametrize__"


def _pytest_stand_in() -> types.ModuleType:
    """What test files most often take from pytest, which is not in the sandbox: raises, approx, fail and
    mark.parametrize (a plain name list and values). Anything else of pytest's is missing: its test errors."""
    pytest = types.ModuleType("pytest")

    class RaisesContext:
        def __init__(self, expected, match=None) -> None:
            self.expected, self.match, self.value = expected, match, None

        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb) -> bool:
            if kind is None:
                raise AssertionError(f"DID NOT RAISE {self.expected!r}")
            if not issubclass(kind, self.expected):
                return False
            if self.match is not None and not re.search(self.match, str(exc)):
                raise AssertionError(f"{str(exc)!r} does not match {self.match!r}")
            self.value = exc
            return True

    def raises(expected, *args, match=None, **kwargs):
        if not args:
            return RaisesContext(expected, match)
        with RaisesContext(expected, match) as context:
            args[0](*args[1:], **kwargs)
        return context

    class approx:
        def __init__(self, expected, rel=1e-6, abs=1e-12) -> None:
            self.expected, self.rel, self.abs = expected, rel, abs

        def __eq__(self, other) -> bool:
            if isinstance(self.expected, list | tuple):
                return len(other) == len(self.expected) and all(
                    approx(e, self.rel, self.abs) == o for e, o in zip(self.expected, other, strict=False)
                )
            return math.isclose(other, self.expected, rel_tol=self.rel, abs_tol=self.abs)

        def __repr__(self) -> str:
            return f"approx({self.expected!r})"

    def fail(reason: str = "") -> None:
        raise AssertionError(reason)

    def parametrize(names, values):
        listed = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)

        def mark(test):
            cases = [tuple(v) if len(listed) > 1 else (v,) for v in values]
            test.__dict__[PARAMETRIZE] = (listed, cases)
            return test

        return mark

    pytest.__dict__.update(raises=raises, approx=approx, fail=fail, mark=types.SimpleNamespace(parametrize=parametrize))
    return pytest


def _prepare(name: str) -> tuple[types.ModuleType, types.CodeType]:
    """The module `name` (registered, so that tests import it) and its file's code, compiled, not yet run."""
    path = f"{SCRATCH}/{name}.py"
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec", dont_inherit=True)
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    return module, code


def _describe(exc: BaseException, limit: int, name_only: bool = False) -> str:
    """The exception's type and text, after the last lines of its traceback (the harness's own frames left
    out), within `limit` characters; or its type's name alone. Formatting runs the exception's own code
    (__str__, a metaclass's __name__): whatever that does, this returns a string or the run dies (the runner
    then reports no results)."""
    name = "BaseException"
    try:
        name = str(type(exc).__name__)[:100]
        if name_only:
            return name
        text = str(exc)
        head = f"{name}: {text[: limit // 2]}" if text else name
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename != __file__ and not frame.filename.startswith("<frozen")
        ]
        tail = "".join(traceback.format_list(frames[-4:]))
        return tail[len(tail) - max(0, limit - len(head)) :] + head
    except BaseException:  # noqa: BLE001 - an exception whose text cannot be had is still an error
        return name if name_only else f"{name} (its message could not be formatted)"


if __name__ == "__main__":
    main()
