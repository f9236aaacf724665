"""Kubernetes quantities ("500m", "2Gi", "10G") as Decimals, without importing the Kubernetes client.

`parse_quantity` is the official client's `kubernetes.utils.quantity.parse_quantity` (Apache License
2.0, © The Kubernetes Authors), unchanged in behaviour: the same numbers and the same ValueErrors (type and message) for
the same inputs (tests/unit/test_quantities.py compares the two over valid and invalid inputs).
It lives here because `kubernetes.utils` cannot be imported alone: the package's `__init__` imports
the whole client (config, dynamic, watch, stream, ...), about a quarter of a second of start-up for
every process that validates a spec, most of which never talk to a cluster.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_EXPONENTS = {
    "n": -3,
    "u": -2,
    "m": -1,
    "K": 1,
    "k": 1,
    "M": 2,
    "G": 3,
    "T": 4,
    "P": 5,
    "E": 6,
}


def parse_quantity(quantity: object) -> Decimal:
    """A Kubernetes quantity as a Decimal: "200Mi" → 209715200, "500m" → 0.5.

    Suffixes: base 1024 Ki, Mi, Gi, Ti, Pi, Ei; base 1000 n, u, m, (none), k, M, G, T, P, E.
    Raises ValueError on anything else.
    """
    if isinstance(quantity, (int, float, Decimal)):
        return Decimal(quantity)

    quantity = str(quantity)
    number = quantity
    suffix = None
    if len(quantity) >= 2 and quantity[-1] == "i":
        if quantity[-2] in _EXPONENTS:
            number = quantity[:-2]
            suffix = quantity[-2:]
    elif len(quantity) >= 1 and quantity[-1] in _EXPONENTS:
        number = quantity[:-1]
        suffix = quantity[-1:]

    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"Invalid number format: {number}") from None

    if suffix is None:
        return value

    if suffix.endswith("i"):
        base = 1024
    elif len(suffix) == 1:
        base = 1000
    else:
        raise ValueError(f"{quantity} has unknown suffix")

    # handle SI inconsistency
    if suffix == "ki":
        raise ValueError(f"{quantity} has unknown suffix")

    if suffix[0] not in _EXPONENTS:
        raise ValueError(f"{quantity} has unknown suffix")

    exponent = Decimal(_EXPONENTS[suffix[0]])
    return value * (base**exponent)
