"""What each lane light and the chime do, by lane state: told apart by timing alone, so
they read the same to a colour-blind supervisor and on a single-colour LED (a NeoPixel
adds colour on top, never instead).

    idle            steady on
    call            fast blink, 4 per second, and a chime every 2 s until acknowledged
    acked           slow blink, 1 per second (the supervisor is on the way)
    out of service  off (the kiosk says it is closed)
    down            double flash every 2 s (no valid frame for 5.5 s: the kiosk, the
                    broker or the panel's link is down; never shown as quiet)
"""

IDLE = "idle"
CALL = "call"
ACKED = "acked"
OUT_OF_SERVICE = "out_of_service"
DOWN = "down"
DISPLAY_STATES = (IDLE, CALL, ACKED, OUT_OF_SERVICE, DOWN)

#: state -> (period ms, ((on from, on until), ...)) within the period
LIGHT = {
    IDLE: (1000, ((0, 1000),)),
    CALL: (250, ((0, 125),)),
    ACKED: (1000, ((0, 500),)),
    OUT_OF_SERVICE: (1000, ()),
    DOWN: (2000, ((0, 100), (200, 300))),
}
CHIME_PERIOD_MS = 2000
CHIME_ON_MS = 150


def light(state, t_ms):
    """Is the lane's light on at ``t_ms`` (any monotonic millisecond count)?"""
    period, spans = LIGHT[state]
    phase = t_ms % period
    for start, stop in spans:
        if start <= phase < stop:
            return True
    return False


def chime(any_call, t_ms):
    """Is the buzzer on at ``t_ms``: only while some lane calls unacknowledged."""
    return any_call and (t_ms % CHIME_PERIOD_MS) < CHIME_ON_MS
