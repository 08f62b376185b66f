"""Two plans aligned layer by layer: by name, renamed positions paired, what differs said in words."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import vggspec
from vggspec.drawing.compare import align_plans, change_words, diff_text, plans_differ

# VGG's configuration C has a 1×1 convolution where D has its third 3×3 one, in blocks 3, 4 and 5
C_TO_D = {
    "block3_conv3": ["kernel_size 1 → 3", "params 65,792 → 590,080 (+524,288)"],
    "block4_conv3": ["kernel_size 1 → 3", "params 262,656 → 2,359,808 (+2,097,152)"],
    "block5_conv3": ["kernel_size 1 → 3", "params 262,656 → 2,359,808 (+2,097,152)"],
}


def small(tmp_path, name: str, layers: str, **fields: str):
    path = tmp_path / f"{name}.yaml"
    extra = "".join(f"{key}: {value}\n" for key, value in fields.items())
    path.write_text(f"name: {name}\nlayers: [{layers}]\ninput_shape: [32, 32, 3]\nfc: [16]\nclasses: 4\n{extra}")
    return vggspec.plan(path)


def test_c_and_d_differ_in_exactly_three_convolutions():
    before, after = vggspec.plan("C"), vggspec.plan("D")
    slots = align_plans(before, after)
    assert [slot.before.name for slot in slots] == [layer.name for layer in before.layers]
    assert [slot.after.name for slot in slots] == [layer.name for layer in after.layers]
    changed = {slot.before.name: change_words(slot.before, slot.after) for slot in slots if slot.status != "same"}
    assert changed == C_TO_D
    # the parameter difference is those three layers' and nothing else: 3×3 - 1×1 = 8 kernel positions each
    assert after.total_params - before.total_params == 4_718_592 == 8 * (256 * 256 + 2 * 512 * 512)
    assert sum(slot.after.params - slot.before.params for slot in slots) == 4_718_592


def test_the_diff_text_of_c_and_d():
    before, after = vggspec.plan("C"), vggspec.plan("D")
    assert diff_text(before, after, align_plans(before, after)).splitlines() == [
        "--- vgg_c: 16 weight layers, 25 layers, 133,638,952 parameters",
        "+++ vgg_d: 16 weight layers, 25 layers, 138,357,544 parameters",
        "~ block3_conv3 (Conv2D)  (56, 56, 256)  kernel_size 1 → 3; params 65,792 → 590,080 (+524,288)",
        "~ block4_conv3 (Conv2D)  (28, 28, 512)  kernel_size 1 → 3; params 262,656 → 2,359,808 (+2,097,152)",
        "~ block5_conv3 (Conv2D)  (14, 14, 512)  kernel_size 1 → 3; params 262,656 → 2,359,808 (+2,097,152)",
        "",
        "layers: 3 changed, 0 added, 0 removed, 22 the same",
        "Total params: 133,638,952 → 138,357,544 (+4,718,592)",
        "Trainable params: 133,638,952 → 138,357,544 (+4,718,592)",
        "Non-trainable params: 0 → 0",
        "Multiply-accumulates per image: 11,770,888,192 → 15,470,264,320 (+3,699,376,128)",
    ]


@pytest.mark.parametrize("name", ["vgg16", "vgg19_bn", "A-LRN", "small64"])
def test_a_plan_is_the_same_as_itself(name):
    plan = vggspec.plan(name)
    slots = align_plans(plan, plan)
    assert {slot.status for slot in slots} == {"same"} and not plans_differ(plan, plan, slots)
    assert diff_text(plan, plan, slots) == (
        f"{plan.name} and {plan.name} are the same plan: {plan.depth} weight layers, {len(plan.layers)} layers, "
        f"{plan.total_params:,} parameters"
    )


def test_layers_only_in_one_plan_are_added_or_removed():
    d, e = vggspec.plan("D"), vggspec.plan("E")
    added = [slot.after.name for slot in align_plans(d, e) if slot.status == "added"]
    removed = [slot.before.name for slot in align_plans(e, d) if slot.status == "removed"]
    assert added == removed == ["block3_conv4", "block4_conv4", "block5_conv4"]
    text = diff_text(d, e, align_plans(d, e))
    assert "+ block3_conv4 (Conv2D)  (56, 56, 256)  590,080 params" in text
    assert "Total params: 138,357,544 → 143,667,240 (+5,309,696)" in text


def test_batch_norm_adds_two_layers_after_each_convolution_and_takes_its_activation():
    plain, normed = vggspec.plan("vgg11"), vggspec.plan("vgg11_bn")
    slots = align_plans(plain, normed)
    assert [slot.after.name for slot in slots if slot.status == "added"][:3] == [
        "block1_conv1_bn",
        "block1_conv1_act",
        "block2_conv1_bn",
    ]
    conv = next(slot for slot in slots if slot.status == "changed")
    assert change_words(conv.before, conv.after) == ["activation relu → none"]


def test_a_layer_of_the_same_kind_in_the_same_place_under_another_name_is_renamed(tmp_path):
    """LRN layers are numbered within a block: the LRN after the second convolution is block1_lrn2 in one
    spec and block1_lrn in the other, the same layer renamed; the one after the first is removed."""
    before = small(tmp_path, "two_lrn", "conv3-8, LRN, conv3-8, LRN, maxpool")
    after = small(tmp_path, "one_lrn", "conv3-8, conv3-8, LRN, maxpool")
    slots = [
        (slot.before and slot.before.name, slot.after and slot.after.name, slot.status)
        for slot in align_plans(before, after)
    ]
    assert ("block1_lrn", None, "removed") in slots
    assert ("block1_lrn2", "block1_lrn", "changed") in slots
    assert "~ block1_lrn2 → block1_lrn (LocalResponseNormalization)" in diff_text(
        before, after, align_plans(before, after)
    )


def test_a_different_preprocessing_is_a_difference(tmp_path):
    caffe = small(tmp_path, "caffe", "conv3-8, maxpool", preprocessing="caffe")
    torch = small(tmp_path, "torch", "conv3-8, maxpool", preprocessing="torch")
    slots = align_plans(caffe, torch)
    assert {slot.status for slot in slots} == {"same"} and plans_differ(caffe, torch, slots)
    assert "  preprocessing: caffe → torch" in diff_text(caffe, torch, slots).splitlines()


TOKENS = ["conv3-8", "conv1-8", "conv3-16", "LRN", "maxpool"]


def token_lists():
    return st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).filter(
        lambda tokens: tokens.count("maxpool") <= 4 and tokens[0].startswith("conv")
    )


@settings(max_examples=60, deadline=None)
@given(first=token_lists(), second=token_lists(), batch_norm=st.booleans())
def test_every_layer_of_both_plans_is_in_one_slot_in_order(first, second, batch_norm):
    plans = []
    for name, tokens in (("first", first), ("second", second)):
        mapping = {"name": name, "layers": tokens, "input_shape": [32, 32, 3], "fc": [8], "classes": 3}
        try:
            plans.append(vggspec.plan(vggspec.spec_from_mapping({**mapping, "batch_norm": batch_norm})))
        except vggspec.SpecError:
            assume(False)
    before, after = plans
    slots = align_plans(before, after)
    assert [slot.before for slot in slots if slot.before] == list(before.layers)
    assert [slot.after for slot in slots if slot.after] == list(after.layers)
    groups = [slot.group for slot in slots]
    assert groups == sorted(groups)  # each group's layers together, the groups in order
    for slot in slots:
        if slot.before and slot.after:
            assert slot.before.name == slot.after.name or type(slot.before) is type(slot.after)
    if first == second:
        assert not plans_differ(before, after, slots)
