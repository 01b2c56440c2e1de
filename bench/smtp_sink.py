"""The benchmark's mail server: aiosmtpd, with a handler that records every message it accepts.

aiosmtpd stays the real SMTP server (the whole dialogue, every byte of every message read);
only the handler differs from the tests' ``Mailbox``, which parses each message with the
``email`` package and writes it to a maildir. That work is the sink's, not the portal's, and
on a shared two-core machine it would be charged to the portal.

Each accepted message appends one line to the record file: its recipients and the moment it
was accepted, ``recipient<TAB>unix-time-ns`` (the wall clock, which the bench also stamps each
answer with), so the bench can check that every sign-up's mail arrived and how long after
the answer. With a delay, the handler waits that long before it accepts each message, as a
relay that takes its time does (Office 365 and SendGrid take 150 ms or more); it still
accepts every message, and serves other connections meanwhile.

    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.Recorder RECORD_FILE [DELAY_MS]
"""

import asyncio
import os
import time


class Recorder:
    def __init__(self, path, delay_ms=0):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._delay = delay_ms / 1000.0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) not in (1, 2):
            parser.error("Recorder takes the record file and, optionally, a delay in ms")
        try:
            delay_ms = int(args[1]) if len(args) == 2 else 0
        except ValueError:
            parser.error("Recorder's delay is a whole number of milliseconds")
        return cls(args[0], delay_ms)

    async def handle_DATA(self, server, session, envelope):
        if self._delay:
            await asyncio.sleep(self._delay)
        # One write of one short line with O_APPEND: lines from concurrent sessions never mix.
        line = f"{','.join(envelope.rcpt_tos)}\t{time.time_ns()}\n"
        os.write(self._fd, line.encode())
        return "250 OK"
