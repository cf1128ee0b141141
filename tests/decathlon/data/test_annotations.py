"""The annotation reader on the real public test labels and on broken copies of them."""
import copy
import json
import zipfile

import pytest

from decathlon.data import AnnotationError, parse_annotations, read_labelled_annotations


@pytest.fixture(scope="module")
def aircraft_test(labels_test_zip):
    with zipfile.ZipFile(labels_test_zip) as archive:
        return json.loads(archive.read("aircraft_test.json"))


def _parse(data, split="test"):
    return parse_annotations(json.dumps(data).encode(), "aircraft_test.json", "aircraft", split)


def test_real_file_reads_with_official_ids_and_labels(aircraft_test):
    ann = _parse(aircraft_test)
    assert len(ann.image_ids) == 3333 and ann.labels_known
    assert ann.image_ids[0] == 10206668 and ann.labels[0] == 10  # category 10000011
    assert ann.file_names[0] == "data/aircraft/test/000001.jpg"
    assert (ann.widths[0], ann.heights[0]) == (121, 72)
    assert ann.class_names[0] == "707-320" and len(ann.class_names) == 100


def test_stripped_file_gives_unknown_labels(aircraft_test):
    stripped = copy.deepcopy(dict(aircraft_test, annotations=[]))
    ann = _parse(stripped)
    assert not ann.labels_known and (ann.labels == -1).all()
    for image in stripped["images"]:
        image["file_name"] = image["file_name"].replace("/test/", "/train/")
        image["id"] -= 2 * 10**5
    with pytest.raises(AnnotationError, match="empty, but the train split must be labelled"):
        _parse(stripped, split="train")


def _broken(aircraft_test, mutate):
    data = copy.deepcopy(aircraft_test)
    mutate(data)
    return data


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["images"].append(dict(d["images"][0], file_name="data/aircraft/test/999999.jpg")),
     r"images\[3333\] \(data/aircraft/test/999999.jpg\): duplicate image id 10206668"),
    (lambda d: d["annotations"][5].update(category_id=10000101),
     r"annotations\[5\] \(data/aircraft/test/000006.jpg\): field 'category_id' is 10000101, expected 10000001..10000100"),
    (lambda d: d["annotations"][5].update(category_id=20000001), r"field 'category_id' is 20000001"),
    (lambda d: d["annotations"].pop(7), r"images\[7\] \(data/aircraft/test/000008.jpg, id \d+\): has no annotation"),
    (lambda d: d["annotations"].append(dict(d["annotations"][3])), r"duplicate annotation for image_id"),
    (lambda d: d["annotations"][2].update(id=1), r"field 'id' is 1, expected it to equal image_id"),
    (lambda d: d["images"][4].update(id=20206672), r"images\[4\] .*does not follow d\*10\*\*7"),
    (lambda d: d["images"][4].update(file_name="aircraft/test/000005.jpg"), r"field 'file_name'"),
    (lambda d: d["images"][4].pop("width"), r"field 'width' missing"),
    (lambda d: d["categories"].reverse() or [c.update(id=10000001 + i) for i, c in enumerate(d["categories"])],
     r"sorted as strings"),
    (lambda d: d["categories"].append({"id": 10000101, "name": "zz"}), r"at most 100"),
])
def test_inconsistent_files_are_refused(aircraft_test, mutate, message):
    with pytest.raises(AnnotationError, match=message) as err:
        _parse(_broken(aircraft_test, mutate))
    assert str(err.value).startswith("aircraft_test.json: ")


def test_split_digit_is_checked(aircraft_test):
    data = copy.deepcopy(aircraft_test)
    for image in data["images"]:
        image["file_name"] = image["file_name"].replace("/test/", "/train/")
    with pytest.raises(AnnotationError, match=r"images\[0\] .*split digit 2, expected 0 \(train\)"):
        _parse(data, split="train")


def test_file_of_another_split_is_refused(aircraft_test):
    with pytest.raises(AnnotationError, match="expected 'data/aircraft/val/NNNNNN.jpg'"):
        _parse(aircraft_test, split="val")


def test_invalid_json_names_the_file():
    with pytest.raises(AnnotationError, match="aircraft_test.json: not valid JSON"):
        parse_annotations(b"{", "aircraft_test.json", "aircraft", "test")


def test_whole_public_release_reads(tmp_path, public_test_labels):
    found = public_test_labels
    assert sorted(d for d, _ in found) == sorted(
        ["aircraft", "cifar100", "daimlerpedcls", "dtd", "gtsrb", "imagenet12", "omniglot", "svhn",
         "ucf101", "vgg-flowers"])
    assert sum(len(a.image_ids) for a in found.values()) == 139_760
    with pytest.raises(AnnotationError, match="no labelled"):
        read_labelled_annotations(tmp_path)


@pytest.mark.parametrize("where", ["top level", "inside an entry"])
def test_deeply_nested_json_names_the_file(aircraft_test, where):
    nested = "[" * 100000 + "]" * 100000
    raw = nested if where == "top level" else json.dumps({**aircraft_test, "info": "N"}).replace('"N"', nested)
    with pytest.raises(AnnotationError, match=r"^aircraft_test.json: JSON nested too deeply to be an annotation "
                                              r"file \(expected objects and lists a few levels deep\)$"):
        parse_annotations(raw.encode(), "aircraft_test.json", "aircraft", "test")
