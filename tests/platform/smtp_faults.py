"""aiosmtpd handlers that fail the way real mail servers do, for the fault tests.

python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_faults.TempFail   (PYTHONPATH=tests/platform)
"""


class TempFail:
    """Accepts the connection and the envelope, then defers the message (4xx): retry later."""

    async def handle_DATA(self, server, session, envelope):
        return "451 4.3.0 Mail server temporarily unavailable, try again later"


class PermFail:
    """Refuses the recipient for good (5xx)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 No such user here"


class PermFailNamed:
    """Refuses the recipient for good, quoting the address back as many servers do."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"

class RejectSender:
    """Refuses the envelope sender (a relay that may not send as MAIL_FROM)."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return "550 5.7.1 Sender address rejected: not owned by user"
