"""Go's RFC3339Nano timestamps, as the proxy writes them in headers and events."""

from instrumentation.timefmt import Rfc3339Nano


def test_a_timestamp_has_nanoseconds_without_trailing_zeros():
    formatter = Rfc3339Nano()
    assert formatter.format(1_714_564_800_123_456_789) == "2024-05-01T12:00:00.123456789Z"
    assert formatter.format(1_714_564_800_120_000_000) == "2024-05-01T12:00:00.12Z"
    assert formatter.format(1_714_564_800_000_000_000) == "2024-05-01T12:00:00Z"


def test_the_next_second_is_not_served_from_the_previous_seconds_memo():
    formatter = Rfc3339Nano()
    assert formatter.format(1_714_564_800_500_000_000) == "2024-05-01T12:00:00.5Z"
    assert formatter.format(1_714_564_801_000_000_001) == "2024-05-01T12:00:01.000000001Z"
    assert formatter.format(1_714_564_800_000_000_001) == "2024-05-01T12:00:00.000000001Z"
