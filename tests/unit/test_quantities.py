"""requests_app.quantities.parse_quantity answers exactly as the Kubernetes client's parse_quantity.

Leasehold parses quantities with its own copy so that validating a spec does not import the whole
Kubernetes client (tests/unit/test_startup_imports.py); this is what keeps the copy honest.
"""

from decimal import Decimal

import pytest
from kubernetes.utils.quantity import parse_quantity as client_parse_quantity

from requests_app.quantities import parse_quantity

SUFFIXES = ["", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
NUMBERS = ["0", "1", "2", "500", "1.5", "0.001", ".5", "1e3", "-1", "+2", "12345678901234567890", "0.1"]
# Not quantities, or not ones the client accepts: each must fail the same way in both.
MALFORMED = [
    "",
    " ",
    "i",
    "Mi",
    "ki",
    "1ki",
    "1Ki ",
    " 1",
    "1 Gi",
    "1GB",
    "1gi",
    "1mi",
    "1X",
    "abc",
    "1.2.3",
    "1e",
    "Gi1",
    "1Mii",
    "1KiB",
    "--1",
    "1,5",
    "0x10",
    "1iM",
    "1EiB",
    "nan",
    "NaN",
    "Infinity",
    "1ni",
    "1mM",
    "100%",
]


def outcome(parse, value):
    try:
        result = parse(value)
    except ValueError as exc:
        return ("ValueError", str(exc))
    # The text of a Decimal tells its value and its exponent apart ("1E+3" is not "1000"), NaN included.
    return (type(result), str(result))


@pytest.mark.parametrize("text", [n + s for n in NUMBERS for s in SUFFIXES] + MALFORMED)
def test_it_parses_every_text_as_the_kubernetes_client_does(text):
    assert outcome(parse_quantity, text) == outcome(client_parse_quantity, text)


@pytest.mark.parametrize("value", [0, 3, -7, 2.5, 0.1, Decimal("1.25"), Decimal("0"), True, None, 1j])
def test_it_takes_numbers_and_other_objects_as_the_kubernetes_client_does(value):
    assert outcome(parse_quantity, value) == outcome(client_parse_quantity, value)


def test_it_reads_the_suffixes_in_their_bases():
    assert parse_quantity("2Gi") == 2 * 1024**3
    assert parse_quantity("500m") == Decimal("0.5")
    assert parse_quantity("10G") == 10 * 1000**3
    with pytest.raises(ValueError, match="unknown suffix"):
        parse_quantity("1ki")
