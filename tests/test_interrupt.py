"""StopOnInterrupt: the first Ctrl-C is a request, the second aborts, the old handler comes back."""

import signal

import pytest

from securedd.interrupt import StopOnInterrupt


def test_first_sigint_requests_a_stop_second_aborts_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with StopOnInterrupt() as stop:
        assert stop.installed and signal.getsignal(signal.SIGINT) is not before
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_an_ignored_sigint_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopOnInterrupt() as stop:
            assert not stop.installed and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_request_without_a_signal():
    with StopOnInterrupt() as stop:
        stop.request()
        assert stop.requested
