"""GS1 Digital Link of a batch (issue 6, part 5): `/01/{gtin14}/10/{batch_number}` with the batch
number percent-encoded per RFC 3986 (unreserved A-Z a-z 0-9 - . _ ~ kept, everything else %XX
upper-case), or null when the product has no GTIN.

Expected values are computed independently with `urllib.parse.quote(s, safe="-._~")`, plus
literal examples written out by hand.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _api_helpers import Brand, make_brand, ok

# GS1 CSET 82 (reference/dpp-domain.md §2.1), written out.
CSET82_PUNCTUATION = "!\"%&'()*+,-./:;<=>?_"
CSET82 = string.ascii_uppercase + string.ascii_lowercase + string.digits + CSET82_PUNCTUATION
GTIN13 = "4006381333931"  # valid check digit; stored as 04006381333931


def expected_link(gtin14: str, batch_number: str) -> str:
    return f"/01/{gtin14}/10/{quote(batch_number, safe='-._~')}"


@pytest.fixture(scope="module")
def brand(api: Any) -> Brand:
    return make_brand(api, "DL", roles=("viewer",))


@pytest.fixture(scope="module")
def gtin_product(api: Any, brand: Brand) -> str:
    body = ok(
        api.as_service().rpc(
            "create_product", {"_brand_id": brand.id, "_name": "Linked", "_gtin": GTIN13}
        )
    )
    assert body["gtin"] == "0" + GTIN13
    product_id: str = body["id"]
    return product_id


def _create(api: Any, brand: Brand, product_id: str, number: str) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        api.as_service().rpc(
            "create_product_batch",
            {"_brand_id": brand.id, "_product_id": product_id, "_batch_number": number},
        )
    )
    return body


def test_cset82_is_82_characters() -> None:
    assert len(CSET82) == len(set(CSET82)) == 82


@pytest.mark.parametrize(
    ("number", "link"),
    [
        # literal, known-good examples (worked out by hand, not by quote())
        ("BATCH-2026-001", "/01/04006381333931/10/BATCH-2026-001"),
        ("L1", "/01/04006381333931/10/L1"),
        ("AB/12", "/01/04006381333931/10/AB%2F12"),
        ("LOT 7".replace(" ", "_"), "/01/04006381333931/10/LOT_7"),
        ("A.B-C_D", "/01/04006381333931/10/A.B-C_D"),
        ("50%", "/01/04006381333931/10/50%25"),
        ("a+b=c", "/01/04006381333931/10/a%2Bb%3Dc"),
        ("(x)*'y'!", "/01/04006381333931/10/%28x%29%2A%27y%27%21"),
        ('"q"?&<>', "/01/04006381333931/10/%22q%22%3F%26%3C%3E"),
        ("1:2;3,4", "/01/04006381333931/10/1%3A2%3B3%2C4"),
        ("...", "/01/04006381333931/10/..."),
    ],
)
def test_literal_examples(
    api: Any, brand: Brand, gtin_product: str, number: str, link: str
) -> None:
    body = _create(api, brand, gtin_product, number)
    assert body["digital_link"] == link == expected_link("04006381333931", number)


def test_every_cset82_character(api: Any, brand: Brand, gtin_product: str) -> None:
    """Each of the 82 characters between two letters: the link matches quote(), decodes back
    to the batch number, its hex is upper-case, and a viewer reads the same link back."""
    links = {}
    for i, char in enumerate(CSET82):
        number = f"C{i}{char}Z"
        link = _create(api, brand, gtin_product, number)["digital_link"]
        assert link == expected_link("04006381333931", number), char
        assert unquote(link.rsplit("/", 1)[1]) == number
        escapes = [link[j + 1 : j + 3] for j in range(len(link)) if link[j] == "%"]
        assert all(e == e.upper() for e in escapes), link
        links[number] = link
    viewer = api.as_user(brand.members["viewer"])
    rows = ok(
        viewer.rpc("list_brand_batches", {"_brand_id": brand.id, "_limit": 500}, method="GET")
    )
    assert {r["batch_number"]: r["digital_link"] for r in rows if r["batch_number"] in links} == (
        links
    )
    number = f"C{CSET82.index('/')}/Z"
    found = ok(
        viewer.rpc(
            "find_product_batch",
            {"_brand_id": brand.id, "_product_id": gtin_product, "_batch_number": number},
            method="GET",
        )
    )
    assert found["digital_link"] == links[number]


def test_all_the_punctuation_at_once(api: Any, brand: Brand, gtin_product: str) -> None:
    number = CSET82_PUNCTUATION  # 20 characters: the longest allowed batch number
    body = _create(api, brand, gtin_product, number)
    assert body["digital_link"] == (
        "/01/04006381333931/10/%21%22%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F_"
    )
    assert body["digital_link"] == expected_link("04006381333931", number)


def test_no_gtin_no_link(api: Any, brand: Brand) -> None:
    """make_brand's product has no GTIN: digital_link is null everywhere."""
    viewer = api.as_user(brand.members["viewer"])
    got = ok(viewer.rpc("get_product_batch", {"_brand_id": brand.id, "_batch_id": brand.batch_id}))
    assert "digital_link" in got and got["digital_link"] is None
    rows = ok(viewer.rpc("list_brand_batches", {"_brand_id": brand.id, "_limit": 500}))
    assert {r["id"]: r["digital_link"] for r in rows}[brand.batch_id] is None


@pytest.mark.parametrize(
    ("gtin", "gtin14"),
    [("96385074", "00000096385074"), ("036000291452", "00036000291452")],
)
def test_short_gtins_are_padded_to_14(api: Any, brand: Brand, gtin: str, gtin14: str) -> None:
    product = ok(
        api.as_service().rpc(
            "create_product", {"_brand_id": brand.id, "_name": f"G{gtin}", "_gtin": gtin}
        )
    )["id"]
    assert _create(api, brand, product, "L-1")["digital_link"] == f"/01/{gtin14}/10/L-1"


@pytest.fixture(scope="module")
def su(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        max_size=30,
    )
)
def test_percent_encoding_matches_rfc3986_for_any_text(
    su: psycopg.Connection[Any], text: str
) -> None:
    """The encoder itself, beyond CSET 82 (UTF-8 bytes, emoji, controls): same as quote().
    PostgreSQL text holds neither NUL nor lone surrogates, so neither is drawn."""
    row = su.execute("select dpp.percent_encode(%s)", (text,)).fetchone()
    assert row == (quote(text, safe="-._~"),)
