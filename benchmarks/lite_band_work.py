import time, numpy as np
from gsc.format.bands import BandLatent, encode_bands, decode_bands, band_work, read_band_header
from gsc.format.tables import ThumbnailGeometry, SCALES
rng = np.random.default_rng(0)
rows = []
for (W, H, sc, C, M, dens) in [(768, 512, 4, 64, 3, 0.3), (768, 512, 0, 64, 40, 0.5), (3840, 2160, 4, 64, 10, 0.3),
                              (3840, 2160, 0, 64, 2, 0.1), (768, 512, 8, 8, 4095, 0.5), (2048, 2048, 0, 64, 300, 0.2),
                              (768, 512, 15, 1, 4095, 1.0), (4096, 4096, 0, 16, 50, 0.05), (1024, 1024, 0, 64, 1000, 0.3)]:
    geo = ThumbnailGeometry(W, H, SCALES[sc])
    q = []
    for p in range(3):
        hb, wb = geo.blocks(p)
        a = rng.integers(-M, M + 1, (C, hb, wb)) * (rng.random((C, hb, wb)) < dens)
        a[0, 0, 0] = M; a[min(1, C-1), 0, 0] = M
        q.append(a.astype(np.int64))
    lat = BandLatent(sc, 10, 2, 0, q)
    data = encode_bands(lat, W, H)
    (_, c, *_), dc, ac, _ = read_band_header(data)
    est = band_work(geo, c, dc, ac)
    t = time.process_time(); decode_bands(data, W, H); cpu = time.process_time() - t
    print(W, H, sc, C, M, len(data), f"est {est/1e9:.3f}s cpu {cpu:.3f}s ratio {est/1e9/cpu:.2f}", flush=True)
