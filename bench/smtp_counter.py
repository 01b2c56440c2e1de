"""The benchmark's mail sink: an aiosmtpd handler that accepts every message and counts it.

aiosmtpd stays the real SMTP server (the whole dialogue, every byte of every message read);
only the handler differs from the tests' ``Mailbox``, which parses each message with the
``email`` package and writes it to a maildir. That work is the sink's, not the portal's, and
on a shared two-core machine it would be charged to the portal. Each accepted message appends
one byte to the count file, so the bench can check that every sign-up's mail was delivered.

    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_counter.Counter COUNT_FILE
"""

import os


class Counter:
    def __init__(self, path):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("Counter takes one argument: the count file")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        os.write(self._fd, b".")
        return "250 OK"
