"""helpers.inspection: filters and their colour opponency, feature maps ranked by spatial
contrast, Grad-CAM on models whose answer is known, the heat-map overlay and its centre share,
and the 2-D maps, class separation and neighbours of features."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from helpers.alexnet import build_alexnet
from helpers.inspection import (
    FEATURES,
    LAST_CONV,
    OPPONENT,
    centre_share,
    class_separation,
    colour_correlation,
    conv_activation_names,
    conv_filters,
    grad_cam,
    layer_outputs,
    localised_channels,
    neighbour_share,
    overlay,
    receptive_field,
    smoothness,
    spatial_contrast,
)


@pytest.fixture(scope="module")
def small_alexnet():
    """The compact AlexNet on 67 x 67 photos: every named layer, tiny feature maps."""
    keras.utils.set_random_seed(0)
    return build_alexnet("compact", image_size=67)


def evidence_model(units: int) -> keras.Model:
    """A 'CNN' whose last conv activations are the photo itself (a 1x1 identity convolution,
    ReLU), averaged over the grid; channel 0 is the evidence for dog: a 1-unit sigmoid head,
    or a 2-unit softmax head."""
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="conv5")
    activations = keras.layers.ReLU(name=LAST_CONV)(conv(inputs))
    pooled = keras.layers.GlobalAveragePooling2D()(activations)
    head = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax",
                              name="output")
    model = keras.Model(inputs, head(pooled))
    conv.set_weights([np.eye(3, dtype="float32")[None, None]])
    kernel = np.zeros((3, units), "float32")
    kernel[0] = 1.0 if units == 1 else (-1.0, 1.0)
    head.set_weights([kernel, np.zeros(units, "float32")])
    return model


@pytest.mark.parametrize("units", [1, 2])
def test_grad_cam_lights_up_where_the_evidence_for_the_class_is(units):
    image = np.zeros((1, 8, 8, 3), "float32")
    image[0, :4, :4, 0] = 2.0  # dog evidence in the top-left quarter
    image[0, 4:, 4:, 1] = 5.0  # a bright channel the head ignores
    model = evidence_model(units)
    heat = grad_cam(model, image)  # predicted class: dog
    assert heat.shape == (1, 8, 8)
    assert np.allclose(heat[0, :4, :4], 1.0) and np.allclose(heat[0][image[0, ..., 0] == 0], 0)
    assert np.allclose(grad_cam(model, image, classes=[1]), heat)
    assert np.allclose(grad_cam(model, image, classes=[0]), 0)  # nothing here speaks for cat


def test_grad_cam_runs_on_alexnet_with_one_map_per_photo(small_alexnet):
    images = np.random.default_rng(0).integers(0, 256, (3, 67, 67, 3)).astype("uint8")
    heat = grad_cam(small_alexnet, images)
    side = small_alexnet.get_layer(LAST_CONV).output.shape[1]
    assert heat.shape == (3, side, side)
    assert heat.min() >= 0 and heat.max() <= 1


def test_filters_are_the_kernels_stretched_to_0_1_per_filter(small_alexnet):
    filters = conv_filters(small_alexnet)
    kernel = keras.ops.convert_to_numpy(small_alexnet.get_layer("conv1").kernel)
    assert filters.shape == (kernel.shape[-1], 11, 11, 3)
    assert np.allclose(filters.min(axis=(1, 2, 3)), 0) and np.allclose(filters.max(axis=(1, 2, 3)),
                                                                        1)
    first = kernel[..., 0]
    assert np.allclose(filters[0], (first - first.min()) / (first.max() - first.min()))
    with pytest.raises(ValueError, match="not RGB"):
        conv_filters(small_alexnet, "conv2")


def test_smoothness_tells_blobs_and_edges_from_noise():
    ramp = np.add.outer(np.arange(11.0), np.arange(11.0))[..., None].repeat(3, axis=-1)
    noise = np.random.default_rng(0).random((11, 11, 3))
    assert smoothness(ramp[None])[0] > 0.9 and abs(smoothness(noise[None])[0]) < 0.3


def test_colour_correlation_finds_opponent_filters_and_not_random_or_grey_ones():
    glorot = keras.initializers.GlorotUniform(seed=0)((11, 11, 3, 96))
    random_filters = np.moveaxis(keras.ops.convert_to_numpy(glorot), -1, 0)
    assert np.sum(colour_correlation(random_filters) < OPPONENT) <= 1  # chance alone: ~0 of 96
    pattern = np.random.default_rng(1).normal(size=(4, 11, 11))
    grey = np.stack([pattern] * 3, axis=-1)
    red_green = np.stack([pattern, -pattern, np.zeros_like(pattern)], axis=-1)
    blue_yellow = np.stack([pattern, pattern, -pattern], axis=-1)
    assert np.allclose(colour_correlation(grey), 1)
    assert (colour_correlation(red_green) < OPPONENT).all()
    assert np.allclose(colour_correlation(blue_yellow), -1)
    # conv_filters' 0-1 stretch is one scale and shift for all colours: it changes nothing
    assert np.allclose(colour_correlation((blue_yellow + 5) / 10), -1)


def test_layer_outputs_give_every_conv_map(small_alexnet):
    names = conv_activation_names(small_alexnet)
    assert names == [f"conv{i}_relu" for i in range(1, 6)]
    images = np.full((2, 67, 67, 3), 128, "uint8")
    outputs = layer_outputs(small_alexnet, images, [*names, FEATURES])
    assert outputs["conv1_relu"].shape == (2, 15, 15, 24)
    assert outputs[FEATURES].shape == (2, 1024) and (outputs[FEATURES] >= 0).all()


def test_spatial_contrast_ranks_a_blob_above_noise_and_weak_or_flat_maps_are_left_out():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:13, :13]
    blob = 3.0 * np.exp(-((rows - 4) ** 2 + (cols - 8) ** 2) / (2 * 1.2**2))
    spot = np.zeros((13, 13))
    spot[6, 6] = 0.1
    maps = np.stack([np.ones((13, 13)),                         # 0: flat
                     2 * rng.random((13, 13)),                  # 1: uniform noise
                     blob + 0.2 * rng.random((13, 13)),         # 2: one bright blob, faint noise
                     np.zeros((13, 13)),                        # 3: dead
                     np.maximum(rng.normal(size=(13, 13)), 0),  # 4: rectified noise
                     spot,                                      # 5: one weak spot
                     ], axis=-1)
    contrast = spatial_contrast(maps)
    assert contrast[3] == 0 and contrast[0] == pytest.approx(17 / 169)  # top 10%: 17 places
    assert contrast[5] == pytest.approx(1) and contrast[2] > 0.4
    assert 0.3 > contrast[4] > contrast[1] > contrast[0]  # noise: hardly more than flat
    # the weak spot (below the median peak), the flat and the dead map are left out
    assert localised_channels(maps, count=6).tolist() == [2, 4, 1]
    assert localised_channels(maps, count=1).tolist() == [2]
    strong_but_flat = np.stack([np.full((13, 13), 5.0), blob, 2 * blob], axis=-1)
    assert localised_channels(strong_but_flat).tolist() == [2]
    both = spatial_contrast(np.stack([maps, maps[..., ::-1]]))  # one row per photo
    assert np.allclose(both, [contrast, contrast[::-1]])


def test_receptive_fields_grow_through_the_layers_as_in_the_paper():
    model = build_alexnet("original", image_size=67)  # the sizes do not depend on the input's
    expected = {"conv1": (11, 4), "conv1_relu": (11, 4), "pool1": (19, 8), "conv2": (51, 8),
                "pool2": (67, 16), "conv3": (99, 16), "conv5_relu": (163, 16)}
    assert {name: receptive_field(model, name) for name in expected} == expected
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        receptive_field(model, "conv9")


def test_overlay_blends_the_jet_colour_of_the_heat_over_the_photo():
    photo = np.full((20, 30, 3), 200, "uint8")
    heat = np.zeros((5, 5))
    assert (overlay(photo, heat, alpha=0) == photo).all()
    blended = overlay(photo, heat, alpha=1.0)
    assert blended.shape == photo.shape and blended.dtype == np.uint8
    assert blended[0, 0].tolist() == [0, 0, 128]  # jet's "nothing": dark blue
    assert overlay(photo, np.ones((5, 5)), alpha=1.0)[0, 0].tolist() == [128, 0, 0]  # dark red


def test_class_separation_measures_the_gap_in_within_class_spreads():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 1000)
    features = rng.normal(size=(2000, 20))
    assert class_separation(features, labels) < 0.5  # one cloud: only sampling noise
    features[:, 3] += 4.0 * labels
    assert class_separation(features, labels) == pytest.approx(4.0, abs=0.3)
    # a direction with ten times the spread, alike in both classes, does not count
    features[:, 7] = np.tile(10 * rng.normal(size=1000), 2)
    assert class_separation(features, labels) == pytest.approx(4.0, abs=0.3)


def test_centre_share_is_the_heat_inside_the_centre_and_its_area():
    heat = np.zeros((3, 8, 8))
    heat[0] = 1.0  # spread evenly
    heat[1, 3:5, 3:5] = 1.0  # in the middle
    heat[2, 0, :] = 1.0  # along the top edge
    shares, area = centre_share(heat)
    assert area == pytest.approx(16 / 64)  # a 2-cell border on each side of 8 leaves 4 x 4
    assert shares.tolist() == pytest.approx([area, 1.0, 0.0])
    assert centre_share(np.zeros((1, 8, 8)))[0].tolist() == [0.0]
    assert centre_share(np.ones((1, 3, 3)), border=0.5)[1] == 0.0  # no centre left


def test_neighbour_share_counts_the_nearest_other_photos():
    features = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [0.0]])
    labels = np.array([0, 0, 1, 1, 1, 0])
    share = neighbour_share(features, labels, which=np.array([0, 3]), of_class=np.array([0, 0]),
                            k=2)
    # photo 0: nearest others are photo 5 (a duplicate, same place) and photo 1, both cats;
    # photo 3: photos 4 and 2, both dogs
    assert share.tolist() == [1.0, 0.0]
