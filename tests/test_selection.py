"""Channel selection: the SSIM readings pick the channel that carries the image's structure."""

import pytest
import torch

from gsc.latent.selection import SELECTORS, select_channels, ssim_map_score


def structured_case():
    torch.manual_seed(0)
    image = torch.rand(3, 64, 96) * 0.1
    image[:, :, :48] += 0.8                     # a bright left half: the structure
    latent = torch.randn(6, 4, 6) * 0.3         # noise channels
    latent[4] = 0.0
    latent[4, :, :3] = 3.0                      # channel 4 follows the structure
    latent[2] = -latent[4] + 0.01 * torch.randn(4, 6)  # channel 2 is its negative
    return latent, image


def test_ssim_of_identical_maps_is_one_and_of_unrelated_is_low():
    a = torch.rand(1, 8, 8)
    assert ssim_map_score(a, a).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim_map_score(a, 1 - a).item() < 0.0


def test_ssim_picks_the_structural_channel():
    latent, image = structured_case()
    assert select_channels(latent, image, 1, "ssim") == [4]
    assert select_channels(latent, image, 1, "ssim-full") == [4]
    # The sign-invariant reading ranks the negative copy as high as the channel itself.
    assert set(select_channels(latent, image, 2, "ssim-abs")) == {2, 4}


@pytest.mark.parametrize("method", sorted(SELECTORS))
def test_every_method_returns_sorted_unique_indices(method):
    latent, image = structured_case()
    for c in range(0, 7):
        idx = select_channels(latent, image, c, method)
        assert idx == sorted(set(idx)) and len(idx) == c and all(0 <= i < 6 for i in idx)


def test_random_is_seeded_and_errors_name_the_problem():
    latent, image = structured_case()
    assert select_channels(latent, image, 3, "random", seed=1) == select_channels(latent, image, 3, "random", seed=1)
    with pytest.raises(ValueError, match="unknown selection 'best'"):
        select_channels(latent, image, 1, "best")
    with pytest.raises(ValueError, match="channels must be in 0..6"):
        select_channels(latent, image, 7)
