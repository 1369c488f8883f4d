"""Every field rule of CONTRACT §3-§4 at its boundary: the last valid value passes, the first
invalid one fails with 400 / 22023 naming the field, and nothing is stored for a refused call.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from _api_helpers import (
    Brand,
    assert_error,
    assert_invalid,
    batch_no,
    fingerprint,
    gtin_check_digit,
    make_brand,
    ok,
    stored,
)

CSET82_PUNCTUATION = "!\"%&'()*+,-./:;<=>?_"


@pytest.fixture(scope="module")
def brand(api: Any) -> Brand:
    return make_brand(api, "Fields")


@pytest.fixture
def editor(api: Any, brand: Brand) -> Any:
    return api.as_user(brand.members["editor"])


def _create(editor: Any, brand: Brand, **fields: Any) -> Any:
    args = {"_brand_id": brand.id, "_product_id": brand.product_id}
    args.setdefault("_batch_number", batch_no())
    args.update({f"_{k}": v for k, v in fields.items()})
    return editor.rpc("create_product_batch", args)


def _refused(editor: Any, brand: Brand, db_dsn: str, field: str, **fields: Any) -> None:
    before = fingerprint(db_dsn, brand.id)
    assert_invalid(_create(editor, brand, **fields), field)
    assert fingerprint(db_dsn, brand.id) == before


# -- batch_number ---------------------------------------------------------------------------

VALID_NUMBERS = [
    "A",
    "A" * 20,
    "0123456789",
    "BATCH-2026-001",
    "...",
    "a.",
    ".a",
    "A1",
    "a1",
    "Ab/Cd:Ef",
    *(f"X{c}Y" for c in CSET82_PUNCTUATION),
    CSET82_PUNCTUATION,
]
INVALID_NUMBERS = [
    "",
    "A" * 21,
    ".",
    "..",
    "A B",
    " A",
    "A ",
    "A#1",
    "é",
    "Ä1",
    "A\x01",
    "A\t1",
    "A\n",
    "A\x7f",
    *(f"X{c}" for c in "#$@[\\]^`{|}~"),
    "A\u00a0",
]


@pytest.mark.parametrize("number", VALID_NUMBERS)
def test_batch_number_accepted_and_stored_exactly(
    editor: Any, brand: Brand, db_dsn: str, number: str
) -> None:
    product = ok(editor.rpc("create_product", {"_brand_id": brand.id, "_name": "BN"}))["id"]
    body = ok(
        editor.rpc(
            "create_product_batch",
            {"_brand_id": brand.id, "_product_id": product, "_batch_number": number},
        )
    )
    assert body["batch_number"] == number
    assert stored(db_dsn, "select batch_number from dpp.batches where id = %s", body["id"]) == [
        (number,)
    ]


@pytest.mark.parametrize("number", INVALID_NUMBERS, ids=ascii)
def test_batch_number_rejected(editor: Any, brand: Brand, db_dsn: str, number: str) -> None:
    _refused(editor, brand, db_dsn, "_batch_number", batch_number=number)


def test_batch_number_null_rejected(editor: Any, brand: Brand, db_dsn: str) -> None:
    _refused(editor, brand, db_dsn, "_batch_number", batch_number=None)


def test_batch_number_unique_per_product_exact_and_case_sensitive(
    editor: Any, brand: Brand, db_dsn: str
) -> None:
    product = ok(editor.rpc("create_product", {"_brand_id": brand.id, "_name": "Dup"}))["id"]

    def create(number: str) -> Any:
        return editor.rpc(
            "create_product_batch",
            {"_brand_id": brand.id, "_product_id": product, "_batch_number": number},
        )

    ok(create("A1"))
    ok(create("a1"))  # different characters: a different batch
    before = fingerprint(db_dsn, brand.id)
    dup = create("A1")
    assert_error(dup, 409, "23505", "Invalid input")
    assert "_batch_number" in (dup.details or "")
    assert fingerprint(db_dsn, brand.id) == before
    rows = stored(
        db_dsn, "select batch_number from dpp.batches where product_id = %s order by 1", product
    )
    assert rows == [("A1",), ("a1",)]


# -- quantity, production_date ----------------------------------------------------------------


@pytest.mark.parametrize("quantity", [1, 2147483647, None])
def test_quantity_accepted(editor: Any, brand: Brand, quantity: int | None) -> None:
    assert ok(_create(editor, brand, quantity=quantity))["quantity"] == quantity


@pytest.mark.parametrize("quantity", [0, -1, -2147483648])
def test_quantity_rejected(editor: Any, brand: Brand, db_dsn: str, quantity: int) -> None:
    _refused(editor, brand, db_dsn, "_quantity", quantity=quantity)


@pytest.mark.parametrize("value", [2147483648, "abc", 1.5])
def test_quantity_of_wrong_type_is_a_400_before_the_function(
    editor: Any, brand: Brand, db_dsn: str, value: Any
) -> None:
    """PostgREST's json_to_record refuses these with PostgreSQL's own 400 (CONTRACT §5)."""
    before = fingerprint(db_dsn, brand.id)
    assert _create(editor, brand, quantity=value).status == 400
    assert fingerprint(db_dsn, brand.id) == before


@pytest.mark.parametrize("day", ["2026-01-15", "0001-01-01", "9999-12-31", "2024-02-29"])
def test_production_date_accepted(editor: Any, brand: Brand, day: str) -> None:
    assert ok(_create(editor, brand, production_date=day))["production_date"] == day


@pytest.mark.parametrize("day", ["infinity", "-infinity", "0044-03-15 BC", "10000-01-01"])
def test_production_date_outside_iso_calendar_rejected(
    editor: Any, brand: Brand, db_dsn: str, day: str
) -> None:
    _refused(editor, brand, db_dsn, "_production_date", production_date=day)


@pytest.mark.parametrize("day", ["2026-02-30", "2026-13-01", "soon"])
def test_production_date_not_a_date_is_400(editor: Any, brand: Brand, day: str) -> None:
    assert _create(editor, brand, production_date=day).status == 400


# -- facility_ref -----------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["F", "F" * 128, "ü" * 128, "FAC EU 01", "Fabrik Köln", None])
def test_facility_ref_accepted(editor: Any, brand: Brand, ref: str | None) -> None:
    assert ok(_create(editor, brand, facility_ref=ref))["facility_ref"] == ref


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "F" * 129,
        " FAC",
        "FAC ",
        "FA\tC",
        "FAC\n",
        "FAC\x1f",
        "FAC\x85X",
        "\u00a0FAC",
        "FAC\u3000",
    ],
    ids=ascii,
)
def test_facility_ref_rejected(editor: Any, brand: Brand, db_dsn: str, ref: str) -> None:
    _refused(editor, brand, db_dsn, "_facility_ref", facility_ref=ref)


# -- attributes -------------------------------------------------------------------------------


def _attributes_of_size(size: int, char: str = "x") -> dict[str, str]:
    """An object whose jsonb text form ({"k": "…"}) is exactly `size` bytes."""
    width = len(char.encode())
    body = size - len('{"k": ""}')
    assert body % width == 0
    return {"k": char * (body // width)}


@pytest.mark.parametrize(
    "attributes",
    [{}, {"a": [1, {"b": None}]}, _attributes_of_size(65536), _attributes_of_size(65536 - 1, "é")],
    ids=["empty", "nested", "64KiB", "64KiB-1-multibyte"],
)
def test_attributes_accepted(
    editor: Any, brand: Brand, db_dsn: str, attributes: dict[str, Any]
) -> None:
    body = ok(_create(editor, brand, attributes=attributes))
    assert body["attributes"] == attributes
    assert stored(
        db_dsn,
        "select octet_length(attributes::text) <= 65536 from dpp.batches where id = %s",
        body["id"],
    ) == [(True,)]


@pytest.mark.parametrize(
    "attributes",
    [[], [1], 1, "x", True, _attributes_of_size(65537), _attributes_of_size(65537, "é")],
    ids=["array", "array1", "number", "string", "bool", "64KiB+1", "64KiB+1-multibyte"],
)
def test_attributes_rejected(editor: Any, brand: Brand, db_dsn: str, attributes: Any) -> None:
    _refused(editor, brand, db_dsn, "_attributes", attributes=attributes)


# -- update_product_batch: the patch rules ------------------------------------------------------


@pytest.fixture
def batch(editor: Any, brand: Brand) -> dict[str, Any]:
    return ok(
        _create(
            editor,
            brand,
            production_date="2026-01-15",
            quantity=500,
            facility_ref="FAC-EU-01",
            attributes={"colour": "red", "size": "M"},
        )
    )


def _patch(editor: Any, brand: Brand, batch: dict[str, Any], patch: Any) -> Any:
    return editor.rpc(
        "update_product_batch", {"_brand_id": brand.id, "_batch_id": batch["id"], "_patch": patch}
    )


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({}, "_patch"),
        ([], "_patch"),
        ([{"quantity": 1}], "_patch"),
        ("quantity", "_patch"),
        (None, "_patch"),
        ({"status": "archived"}, "_patch"),
        ({"quantity": 1, "colour": "red"}, "_patch"),
        ({"batch_number": None}, "_patch.batch_number"),
        ({"batch_number": 12}, "_patch.batch_number"),
        ({"batch_number": "A B"}, "_patch.batch_number"),
        ({"batch_number": ".."}, "_patch.batch_number"),
        ({"batch_number": "B" * 21}, "_patch.batch_number"),
        ({"attributes": None}, "_patch.attributes"),
        ({"attributes": []}, "_patch.attributes"),
        ({"attributes": "x"}, "_patch.attributes"),
        ({"attributes": _attributes_of_size(65537)}, "_patch.attributes"),
        ({"quantity": "abc"}, "_patch.quantity"),
        ({"quantity": "5"}, "_patch.quantity"),
        ({"quantity": 1e30}, "_patch.quantity"),
        ({"quantity": 2147483648}, "_patch.quantity"),
        ({"quantity": 1.5}, "_patch.quantity"),
        ({"quantity": True}, "_patch.quantity"),
        ({"quantity": 0}, "_patch.quantity"),
        ({"quantity": -1}, "_patch.quantity"),
        ({"quantity": [1]}, "_patch.quantity"),
        ({"production_date": "2026-02-30"}, "_patch.production_date"),
        ({"production_date": "2026-1-5"}, "_patch.production_date"),
        ({"production_date": "0000-01-01"}, "_patch.production_date"),
        ({"production_date": "2026-01-15T00:00:00Z"}, "_patch.production_date"),
        ({"production_date": "infinity"}, "_patch.production_date"),
        ({"production_date": 20260115}, "_patch.production_date"),
        ({"facility_ref": ""}, "_patch.facility_ref"),
        ({"facility_ref": " FAC"}, "_patch.facility_ref"),
        ({"facility_ref": "F" * 129}, "_patch.facility_ref"),
        ({"facility_ref": "A\nB"}, "_patch.facility_ref"),
        ({"facility_ref": 7}, "_patch.facility_ref"),
        ({"quantity": 600, "facility_ref": "\t"}, "_patch.facility_ref"),
    ],
    ids=ascii,
)
def test_patch_rejected(
    editor: Any, brand: Brand, db_dsn: str, batch: dict[str, Any], patch: Any, field: str
) -> None:
    before = fingerprint(db_dsn, brand.id)
    assert_invalid(_patch(editor, brand, batch, patch), field)
    assert fingerprint(db_dsn, brand.id) == before


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"production_date": None}, {"production_date": None}),
        ({"quantity": None}, {"quantity": None}),
        ({"facility_ref": None}, {"facility_ref": None}),
        ({"quantity": 2147483647}, {"quantity": 2147483647}),
        ({"quantity": 1}, {"quantity": 1}),
        ({"quantity": 7.0}, {"quantity": 7}),
        ({"production_date": "2024-02-29"}, {"production_date": "2024-02-29"}),
        ({"facility_ref": "F" * 128}, {"facility_ref": "F" * 128}),
        ({"attributes": {"grade": "A"}}, {"attributes": {"grade": "A"}}),
        ({"attributes": {}}, {"attributes": {}}),
        ({"batch_number": "Renamed.1"}, {"batch_number": "Renamed.1"}),
    ],
    ids=ascii,
)
def test_patch_applies_exactly_the_named_fields(
    editor: Any,
    brand: Brand,
    batch: dict[str, Any],
    patch: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    body = ok(_patch(editor, brand, batch, patch))
    unchanged = {k: v for k, v in batch.items() if k not in expected and k != "updated_at"}
    assert {k: body[k] for k in unchanged} == unchanged
    assert {k: body[k] for k in expected} == expected


def test_patch_unknown_keys_are_named(editor: Any, brand: Brand, batch: dict[str, Any]) -> None:
    resp = _patch(editor, brand, batch, {"quantity": 1, "status": "x", "colour": "red"})
    assert_invalid(resp, "_patch")
    assert "colour, status" in (resp.details or "")


def test_patch_attributes_replace_the_whole_object(
    editor: Any, brand: Brand, batch: dict[str, Any], db_dsn: str
) -> None:
    ok(_patch(editor, brand, batch, {"attributes": {"size": "L"}}))
    assert stored(db_dsn, "select attributes from dpp.batches where id = %s", batch["id"]) == [
        ({"size": "L"},)
    ]


def test_patch_to_an_existing_batch_number_is_409(
    editor: Any, brand: Brand, db_dsn: str, batch: dict[str, Any]
) -> None:
    other = ok(_create(editor, brand))
    before = fingerprint(db_dsn, brand.id)
    resp = _patch(editor, brand, batch, {"batch_number": other["batch_number"]})
    assert_error(resp, 409, "23505", "Invalid input")
    assert fingerprint(db_dsn, brand.id) == before


def test_every_update_moves_updated_at_forward(
    editor: Any, brand: Brand, db_dsn: str, batch: dict[str, Any]
) -> None:
    stamps = [batch["updated_at"]]
    for _ in range(3):  # the same patch each time: nothing changes but updated_at
        stamps.append(ok(_patch(editor, brand, batch, {"quantity": 500}))["updated_at"])
    assert stamps == sorted(set(stamps)), stamps
    assert stored(
        db_dsn, "select updated_by::text from dpp.batches where id = %s", batch["id"]
    ) == [(brand.members["editor"],)]
    assert ok(_patch(editor, brand, batch, {"quantity": 1}))["created_at"] == batch["created_at"]


# -- products: names, GTIN ----------------------------------------------------------------------


def _gtin(data: str) -> str:
    return data + gtin_check_digit(data)


VALID_GTINS = [
    "96385074",
    "036000291452",
    "4006381333931",
    "00012345600012",
    _gtin("1234567"),
    _gtin("12345678901"),
    _gtin("123456789012"),
    _gtin("1234567890123"),
]


@pytest.mark.parametrize("gtin", VALID_GTINS)
def test_gtin_accepted_and_normalised_to_14_digits(editor: Any, brand: Brand, gtin: str) -> None:
    body = ok(editor.rpc("create_product", {"_brand_id": brand.id, "_name": "G", "_gtin": gtin}))
    assert body["gtin"] == gtin.zfill(14)


def test_gtin_unique_within_the_brand(editor: Any, brand: Brand, api: Any) -> None:
    gtin = _gtin(str(time.time_ns())[-12:])
    ok(editor.rpc("create_product", {"_brand_id": brand.id, "_name": "One", "_gtin": gtin}))
    assert_error(
        editor.rpc("create_product", {"_brand_id": brand.id, "_name": "Two", "_gtin": gtin}),
        409,
        "23505",
        "Invalid input",
    )
    other = make_brand(api, "G2", roles=("editor",))
    ok(
        api.as_user(other.members["editor"]).rpc(
            "create_product", {"_brand_id": other.id, "_name": "One", "_gtin": gtin}
        )
    )


def _wrong_check_digit(gtin: str) -> str:
    return gtin[:-1] + str((int(gtin[-1]) + 1) % 10)


@pytest.mark.parametrize(
    "gtin",
    [
        *(_wrong_check_digit(g) for g in VALID_GTINS[:4]),
        "4006381A33931",
        "400638133393",
        "40063813339311111",
        "1234567",
        "",
        " 96385074",
        "96385074 ",
        "9638-5074",
        "٩٦٣٨٥٠٧٤",
    ],
    ids=ascii,
)
def test_gtin_rejected(editor: Any, brand: Brand, db_dsn: str, gtin: str) -> None:
    before = fingerprint(db_dsn, brand.id)
    assert_invalid(
        editor.rpc("create_product", {"_brand_id": brand.id, "_name": "G", "_gtin": gtin}), "_gtin"
    )
    assert fingerprint(db_dsn, brand.id) == before


@pytest.mark.parametrize("name", ["", " Jacket", "Jacket ", "Ja\ncket", "J" * 201, None], ids=ascii)
def test_product_and_brand_names_rejected(
    editor: Any, as_service: Any, brand: Brand, name: str | None
) -> None:
    assert_invalid(editor.rpc("create_product", {"_brand_id": brand.id, "_name": name}), "_name")
    assert_invalid(as_service.rpc("create_brand", {"_name": name}), "_name")


def test_product_attributes_rules(editor: Any, brand: Brand) -> None:
    assert_invalid(
        editor.rpc("create_product", {"_brand_id": brand.id, "_name": "A", "_attributes": []}),
        "_attributes",
    )
    assert (
        ok(
            editor.rpc(
                "create_product", {"_brand_id": brand.id, "_name": "J" * 200, "_attributes": None}
            )
        )["name"]
        == "J" * 200
    )
