"""Settings every test layer shares."""

from __future__ import annotations

import signal

# A shell without job control (`cmd &`, nohup, some CI runners) starts its background
# commands with SIGINT ignored, and an ignored signal stays ignored in every child: the
# Ctrl-C tests would then send SIGINT to a labkit process that cannot receive it. Start
# from the disposition a terminal gives, as a user's `labkit` has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
