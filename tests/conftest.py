"""Settings every test layer shares."""

from __future__ import annotations

import os
import signal

import pytest

# A shell without job control (`cmd &`, nohup, some CI runners) starts its background
# commands with SIGINT ignored, and an ignored signal stays ignored in every child: the
# Ctrl-C tests would then send SIGINT to a labkit process that cannot receive it. Start
# from the disposition a terminal gives, as a user's `labkit` has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory):
    """A temporary lab (LABKIT_HOME, inherited by notebook kernels and engines) with the
    tiny preset's tiles, made once per test module.
    """
    home = tmp_path_factory.mktemp("lab")
    old = os.environ.get("LABKIT_HOME")
    os.environ["LABKIT_HOME"] = str(home)
    try:
        from labkit import prep

        prep.ensure_tiles("tiny", progress=False)
        yield home
    finally:
        if old is None:
            os.environ.pop("LABKIT_HOME", None)
        else:
            os.environ["LABKIT_HOME"] = old
