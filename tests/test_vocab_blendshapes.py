"""Tests for imucap.vocab.blendshapes: the name table, MediaPipe and Live Link conversions."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from imucap.errors import ImucapError
from imucap.vocab import (
    ARKIT_NAMES,
    LIVELINK_CSV_COLUMNS,
    LIVELINK_CSV_HEADER,
    LIVELINK_UDP_NAMES,
    MEDIAPIPE_CATEGORIES,
    NUM_BLENDSHAPES,
    REGIONS,
    NameScheme,
    UnknownBlendshapeError,
    canonical_name,
    dict_to_weights,
    from_livelink,
    from_livelink_csv_values,
    from_mediapipe,
    index_of,
    names,
    to_livelink,
    to_livelink_csv_values,
    to_mediapipe,
    weights_to_dict,
)
from imucap.vocab.blendshape_table import BLENDSHAPES

RNG = np.random.default_rng(7)
TONGUE = ARKIT_NAMES.index("tongueOut")


def random_weights(*batch: int) -> np.ndarray:
    return RNG.uniform(0.0, 1.0, size=batch + (NUM_BLENDSHAPES,)).astype(np.float32)


# --- the table --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", [NameScheme.ARKIT, NameScheme.PASCAL, NameScheme.RAW])
def test_each_scheme_has_52_unique_names(scheme: NameScheme) -> None:
    spelled = names(scheme)
    assert len(spelled) == 52
    assert len(set(spelled)) == 52
    assert len({n.lower() for n in spelled}) == 52


def test_mediapipe_scheme_has_51_blendshapes_and_52_unique_categories() -> None:
    assert len(names(NameScheme.MEDIAPIPE)) == 51
    assert "tongueOut" not in names(NameScheme.MEDIAPIPE)
    assert len(MEDIAPIPE_CATEGORIES) == 52
    assert len(set(MEDIAPIPE_CATEGORIES)) == 52
    assert MEDIAPIPE_CATEGORIES[0] == "_neutral"
    assert "tongueOut" not in MEDIAPIPE_CATEGORIES
    # MediaPipe lists the non-neutral names sorted; spot-check a few documented positions.
    assert list(MEDIAPIPE_CATEGORIES[1:]) == sorted(MEDIAPIPE_CATEGORIES[1:])
    assert MEDIAPIPE_CATEGORIES[1] == "browDownLeft"
    assert MEDIAPIPE_CATEGORIES[9] == "eyeBlinkLeft"
    assert MEDIAPIPE_CATEGORIES[23:27] == ("jawForward", "jawLeft", "jawOpen", "jawRight")
    assert MEDIAPIPE_CATEGORIES[51] == "noseSneerRight"
    assert set(MEDIAPIPE_CATEGORIES[1:]) == set(names(NameScheme.MEDIAPIPE))


def test_apple_order_spot_checks() -> None:
    assert len(ARKIT_NAMES) == NUM_BLENDSHAPES == 52
    assert ARKIT_NAMES[0] == "eyeBlinkLeft"
    assert ARKIT_NAMES[7] == "eyeBlinkRight"
    assert ARKIT_NAMES[14:23] == (
        "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose",
        "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    )
    assert ARKIT_NAMES[23] == "mouthSmileLeft"
    assert ARKIT_NAMES[40] == "mouthUpperUpRight"
    assert ARKIT_NAMES[41] == "browDownLeft"
    assert ARKIT_NAMES[-1] == "tongueOut"


def test_spellings_follow_each_scheme() -> None:
    for row in BLENDSHAPES:
        assert row.pascal == row.arkit[0].upper() + row.arkit[1:]
        assert row.mediapipe in (row.arkit, None)
        if row.arkit.endswith("Left") and not row.arkit.startswith(("jaw", "mouthLeft")):
            assert row.raw == row.arkit[: -len("Left")] + "_L"
        elif row.arkit.endswith("Right") and not row.arkit.startswith(("jaw", "mouthRight")):
            assert row.raw == row.arkit[: -len("Right")] + "_R"
        else:
            assert row.raw == row.arkit
    raw = dict(zip(ARKIT_NAMES, names(NameScheme.RAW), strict=True))
    assert raw["eyeBlinkLeft"] == "eyeBlink_L"
    assert raw["mouthSmileLeft"] == "mouthSmile_L"
    assert raw["cheekSquintLeft"] == "cheekSquint_L"
    assert raw["browInnerUp"] == "browInnerUp"
    assert raw["jawLeft"] == "jawLeft"
    assert raw["mouthRight"] == "mouthRight"


def test_regions_partition_the_names() -> None:
    assert set(REGIONS) == {"brows", "eyes", "cheeks", "nose", "mouth", "jaw", "tongue"}
    flat = [n for members in REGIONS.values() for n in members]
    assert sorted(flat) == sorted(ARKIT_NAMES)
    assert REGIONS["jaw"] == ("jawForward", "jawLeft", "jawRight", "jawOpen")
    assert REGIONS["tongue"] == ("tongueOut",)
    assert "mouthClose" in REGIONS["mouth"]
    assert REGIONS["cheeks"] == ("cheekPuff", "cheekSquintLeft", "cheekSquintRight")


def test_livelink_layouts_are_61_and_hold_every_name_once() -> None:
    pascal = set(names(NameScheme.PASCAL))
    pose = {"HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
            "RightEyeYaw", "RightEyePitch", "RightEyeRoll"}
    for layout in (LIVELINK_UDP_NAMES, LIVELINK_CSV_COLUMNS):
        assert len(layout) == 61
        assert set(layout) == pascal | pose
        assert layout[52:] == (
            "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
            "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
        )
    assert LIVELINK_CSV_HEADER[:2] == ("Timecode", "BlendShapeCount")
    assert LIVELINK_CSV_HEADER[2:] == LIVELINK_CSV_COLUMNS


def test_udp_and_csv_orders_differ_exactly_in_jaw_and_mouth_left_right() -> None:
    assert LIVELINK_UDP_NAMES[14:23] == (
        "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose",
        "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight",
    )
    # The header row the Live Link Face app writes into its CSV takes.
    assert ",".join(LIVELINK_CSV_HEADER[16:25]) == (
        "JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,MouthRight,MouthLeft"
    )
    differing = {u for u, c in zip(LIVELINK_UDP_NAMES, LIVELINK_CSV_COLUMNS, strict=True)
                 if u != c}
    assert differing == {"JawLeft", "JawRight", "MouthLeft", "MouthRight"}
    # Apart from those four, the UDP blendshape order is Apple's order.
    assert LIVELINK_UDP_NAMES[:52] == names(NameScheme.PASCAL)


# --- names ------------------------------------------------------------------------------------


def test_every_spelling_of_every_name_canonicalises() -> None:
    for i, row in enumerate(BLENDSHAPES):
        spellings = [row.arkit, row.pascal, row.raw] + ([row.mediapipe] if row.mediapipe else [])
        for spelling in spellings:
            for variant in (
                spelling, spelling.lower(), spelling.upper(), f"  {spelling} ",
                f"blendShape1.{spelling}", f"Face_Mesh.{spelling}", f"ns:blendShape1.{spelling}",
            ):
                assert canonical_name(variant) == row.arkit, variant
                assert index_of(variant) == i


def test_names_accepts_scheme_values() -> None:
    assert names("pascal") == names(NameScheme.PASCAL)
    assert names()[0] == "eyeBlinkLeft"
    assert names(NameScheme.PASCAL)[0] == "EyeBlinkLeft"
    assert names(NameScheme.RAW)[0] == "eyeBlink_L"


@pytest.mark.parametrize(
    ("bad", "suggestion"),
    [
        ("eyeBlnkLeft", "eyeBlinkLeft"),
        ("blendShape1.jawOpn", "jawOpen"),
        ("mouthSmile_Lft", "mouthSmileLeft"),
        ("mouthSmle_L", "mouthSmile_L"),
        ("TongueOutt", "tongueOut"),
    ],
)
def test_unknown_names_suggest_the_closest(bad: str, suggestion: str) -> None:
    with pytest.raises(UnknownBlendshapeError) as info:
        canonical_name(bad)
    message = str(info.value)
    assert "\n" not in message
    assert repr(bad) in message
    assert f"did you mean {suggestion!r}?" in message
    assert info.value.suggestion == suggestion
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ImucapError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == message and copy.suggestion == suggestion


def test_far_off_names_and_neutral_are_rejected_clearly() -> None:
    with pytest.raises(UnknownBlendshapeError, match="'banana'") as info:
        canonical_name("banana")
    assert info.value.suggestion is None
    with pytest.raises(UnknownBlendshapeError, match="neutral"):
        canonical_name("_neutral")
    with pytest.raises(UnknownBlendshapeError):
        index_of("eyeBlink")


# --- dictionaries -----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(NameScheme))
def test_dict_round_trip_in_every_scheme(scheme: NameScheme) -> None:
    w = random_weights()
    as_dict = weights_to_dict(w, scheme)
    assert list(as_dict) == list(names(scheme))
    assert all(isinstance(v, float) for v in as_dict.values())
    back = dict_to_weights(as_dict)
    expected = w.copy()
    if scheme is NameScheme.MEDIAPIPE:
        expected[TONGUE] = 0.0
        assert back.missing == ("tongueOut",)
    else:
        assert back.missing == ()
    assert back.unknown == ()
    assert back.weights.dtype == np.float32
    np.testing.assert_array_equal(back.weights, expected)


def test_dict_to_weights_reports_missing_and_unknown() -> None:
    weights, missing, unknown = dict_to_weights(
        {"EyeBlinkLeft": 0.25, "blendShape1.jawOpen": 0.5, "_neutral": 0.9, "smile": 1.0}
    )
    assert weights.shape == (52,)
    assert weights[index_of("eyeBlinkLeft")] == 0.25
    assert weights[index_of("jawOpen")] == 0.5
    assert np.count_nonzero(weights) == 2
    assert unknown == ("smile",)
    assert len(missing) == 50
    assert "eyeBlinkLeft" not in missing and "tongueOut" in missing


def test_dict_to_weights_strict_and_duplicates() -> None:
    with pytest.raises(UnknownBlendshapeError, match="'smile'"):
        dict_to_weights({"jawOpen": 0.5, "smile": 1.0}, strict=True)
    assert dict_to_weights({"_neutral": 1.0}, strict=True).weights.sum() == 0.0
    with pytest.raises(ValueError, match="both name blendshape 'eyeBlinkLeft'"):
        dict_to_weights({"eyeBlinkLeft": 0.1, "eyeBlink_L": 0.2})


def test_dict_conversions_take_batches() -> None:
    w = random_weights(4, 3)
    columns = weights_to_dict(w, NameScheme.PASCAL)
    assert columns["JawOpen"].shape == (4, 3)
    np.testing.assert_array_equal(dict_to_weights(columns).weights, w)
    partial = dict_to_weights({"jawOpen": np.ones(5), "eyeBlinkLeft": 0.5}).weights
    assert partial.shape == (5, 52)
    assert np.all(partial[:, index_of("eyeBlinkLeft")] == 0.5)
    with pytest.raises(ValueError, match="broadcast"):
        dict_to_weights({"jawOpen": np.ones(5), "eyeBlinkLeft": np.ones(4)})


# --- MediaPipe --------------------------------------------------------------------------------


def test_mediapipe_round_trip_loses_only_tongue_out() -> None:
    w = random_weights()
    mp = to_mediapipe(w, neutral=0.3)
    assert mp.shape == (52,) and mp.dtype == np.float32
    assert mp[0] == np.float32(0.3)
    back = from_mediapipe(mp)
    expected = w.copy()
    expected[TONGUE] = 0.0
    np.testing.assert_array_equal(back, expected)


def test_mediapipe_array_maps_by_name() -> None:
    scores = np.zeros(52, dtype=np.float32)
    scores[MEDIAPIPE_CATEGORIES.index("jawRight")] = 0.7  # position 26 in MediaPipe's order
    scores[0] = 1.0  # _neutral is not a blendshape
    w = from_mediapipe(scores)
    assert w[index_of("jawRight")] == np.float32(0.7)
    assert np.count_nonzero(w) == 1
    mp = to_mediapipe(w)
    assert mp[26] == np.float32(0.7) and mp[0] == 0.0


def test_mediapipe_mapping_and_category_objects() -> None:
    w = random_weights()
    expected = w.copy()
    expected[TONGUE] = 0.0
    as_dict = {"_neutral": 0.01, **weights_to_dict(w, NameScheme.MEDIAPIPE)}
    np.testing.assert_array_equal(from_mediapipe(as_dict), expected)
    mp = to_mediapipe(w, neutral=0.5)
    categories = [
        SimpleNamespace(index=i, category_name=name, score=float(mp[i]), display_name="")
        for i, name in enumerate(MEDIAPIPE_CATEGORIES)
    ]
    np.testing.assert_array_equal(from_mediapipe(categories), expected)
    # result.face_blendshapes: one list of categories per face.
    both = from_mediapipe([categories, categories])
    assert both.shape == (2, 52)
    np.testing.assert_array_equal(both[1], expected)
    with pytest.raises(UnknownBlendshapeError):
        from_mediapipe([SimpleNamespace(category_name="eyeBlinkLeftt", score=1.0)])


def test_mediapipe_batches_and_bad_shapes() -> None:
    w = random_weights(2, 5)
    mp = to_mediapipe(w, neutral=np.full((2, 5), 0.25))
    assert mp.shape == (2, 5, 52)
    assert np.all(mp[..., 0] == 0.25)
    assert from_mediapipe(mp).shape == (2, 5, 52)
    with pytest.raises(ValueError, match=r"expected 52 MediaPipe blendshape scores .*\(51,\)"):
        from_mediapipe(np.zeros(51))
    with pytest.raises(ValueError, match=r"expected 52 blendshape weights .*\(53,\)"):
        to_mediapipe(np.zeros(53))


# --- Live Link --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pack", "unpack"),
    [(to_livelink, from_livelink), (to_livelink_csv_values, from_livelink_csv_values)],
)
def test_livelink_round_trips_are_exact(pack, unpack) -> None:
    w = random_weights()
    values = pack(w, head_ypr=(0.1, -0.2, 0.3), left_eye_ypr=(1, 2, 3), right_eye_ypr=(4, 5, 6))
    assert values.shape == (61,) and values.dtype == np.float32
    frame = unpack(values)
    np.testing.assert_array_equal(frame.weights, w)
    np.testing.assert_array_equal(frame.head_ypr, np.float32([0.1, -0.2, 0.3]))
    np.testing.assert_array_equal(frame.left_eye_ypr, [1, 2, 3])
    weights, head, left, right = frame
    np.testing.assert_array_equal(right, [4, 5, 6])


def test_values_land_in_their_named_column_in_each_layout() -> None:
    w = np.zeros(52, dtype=np.float32)
    w[index_of("jawLeft")] = 0.42
    w[index_of("mouthRight")] = 0.17
    udp = to_livelink(w)
    csv = to_livelink_csv_values(w)
    assert udp[LIVELINK_UDP_NAMES.index("JawLeft")] == np.float32(0.42)
    assert csv[LIVELINK_CSV_COLUMNS.index("JawLeft")] == np.float32(0.42)
    assert LIVELINK_UDP_NAMES.index("JawLeft") == 15
    assert LIVELINK_CSV_COLUMNS.index("JawLeft") == 16
    assert udp[15] == np.float32(0.42) and udp[16] == 0.0
    assert csv[16] == np.float32(0.42) and csv[15] == 0.0
    assert udp[LIVELINK_UDP_NAMES.index("MouthRight")] == np.float32(0.17) == udp[22]
    assert csv[LIVELINK_CSV_COLUMNS.index("MouthRight")] == np.float32(0.17) == csv[21]
    # A CSV row read as if it were a UDP packet would swap them: the layouts really differ.
    assert from_livelink(csv).weights[index_of("jawRight")] == np.float32(0.42)
    assert from_livelink_csv_values(csv).weights[index_of("jawLeft")] == np.float32(0.42)


def test_rotations_land_in_their_named_columns() -> None:
    values = to_livelink_csv_values(
        np.zeros(52), head_ypr=(1, 2, 3), left_eye_ypr=(4, 5, 6), right_eye_ypr=(7, 8, 9)
    )
    row = dict(zip(LIVELINK_CSV_COLUMNS, values.tolist(), strict=True))
    assert (row["HeadYaw"], row["HeadPitch"], row["HeadRoll"]) == (1, 2, 3)
    assert (row["LeftEyeYaw"], row["LeftEyeRoll"], row["RightEyePitch"]) == (4, 6, 8)


def test_livelink_batches() -> None:
    w = random_weights(3, 4)
    head = RNG.normal(size=(3, 4, 3)).astype(np.float32)
    udp = to_livelink(w, head_ypr=head, left_eye_ypr=(0.5, 0.0, 0.0))
    assert udp.shape == (3, 4, 61)
    frame = from_livelink(udp)
    np.testing.assert_array_equal(frame.weights, w)
    np.testing.assert_array_equal(frame.head_ypr, head)
    assert frame.left_eye_ypr.shape == (3, 4, 3)
    assert np.all(frame.left_eye_ypr[..., 0] == 0.5)
    csv = to_livelink_csv_values(w)
    assert csv.shape == (3, 4, 61)
    np.testing.assert_array_equal(from_livelink_csv_values(csv).weights, w)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: to_livelink(np.zeros(51)), r"expected 52 blendshape weights in the last axis, "
                                            r"got shape \(51,\)"),
        (lambda: to_livelink(np.zeros((4, 61))), r"got shape \(4, 61\)"),
        (lambda: to_livelink_csv_values(0.5), r"got shape \(\)"),
        (lambda: from_livelink(np.zeros(52)), r"expected 61 Live Link values .*\(52,\)"),
        (lambda: from_livelink_csv_values(np.zeros((2, 60))), r"\(2, 60\)"),
        (lambda: weights_to_dict(np.zeros(61)), r"\(61,\)"),
        (lambda: to_livelink(np.zeros(52), head_ypr=(1, 2)), r"head_ypr"),
        (lambda: to_livelink(np.zeros((2, 52)), head_ypr=np.zeros((3, 3))), r"head_ypr"),
    ],
)
def test_bad_shapes_raise_one_line_value_errors(call, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
