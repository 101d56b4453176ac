"""Runs model-written code against its tests in a bubblewrap sandbox on this machine (the CodeRunner of
core/execution.py): harness.py runs inside, bubblewrap.py starts it and reads what it says, results.py
judges that, runner.py bounds how many run at once."""
