"""IEC 61851-1 Annex A control pilot PWM: duty cycle <-> maximum current.

Table A.8 (EVSE side): 6-51 A -> duty = A / 0.6 %; 51-80 A -> duty = A / 2.5 + 64 %.
Below 6 A no charging is offered: the pilot stays at a steady +12 V (duty 100 %).
Table A.7 (EV side) reads the offer back: 8-85 % -> duty * 0.6 A; 85-96 % -> (duty - 64) * 2.5 A;
3-7 % means digital communication (ISO 15118) and is not an AC current offer.
"""

from __future__ import annotations

__all__ = [
    "DUTY_DIGITAL",
    "DUTY_OFF",
    "DUTY_UNAVAILABLE",
    "MAX_CURRENT_A",
    "MIN_CURRENT_A",
    "amps_from_duty",
    "duty_from_amps",
    "pwm_running",
]

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0
DUTY_OFF = 100.0  # steady +12 V: no PWM, charging not allowed (states A1/B1)
DUTY_UNAVAILABLE = 0.0  # steady -12 V: state F, EVSE not available
DUTY_DIGITAL = 5.0  # ISO 15118 high-level communication required


def duty_from_amps(amps: float) -> float:
    """Duty (%) that offers `amps` (IEC 61851-1 table A.8); 100 % (no offer) below 6 A."""
    if amps < MIN_CURRENT_A:
        return DUTY_OFF
    amps = min(amps, MAX_CURRENT_A)
    if amps <= 51.0:
        return amps / 0.6
    return amps / 2.5 + 64.0


def pwm_running(duty: float) -> bool:
    """True when the pilot oscillates (neither steady +12 V nor steady -12 V)."""
    return 0.0 < duty < DUTY_OFF


def amps_from_duty(duty: float) -> float:
    """Current an EV may draw at `duty` (IEC 61851-1 table A.7); 0 when nothing is offered."""
    if duty < 8.0 or duty > 97.0:
        return 0.0  # 3-7 %: digital communication only; > 97 %: no PWM
    if duty <= 85.0:
        return max(MIN_CURRENT_A, duty * 0.6)
    return min(MAX_CURRENT_A, (duty - 64.0) * 2.5)
