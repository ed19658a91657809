"""The seed's entry point for the transformer model, kept working: it runs the whole process
(align, mouth indices, crop, PCA + normalise, loaders, train + validate, curves, test evaluation,
result video). Same flags as the original:

    python main_transformer.py --data_verts_path data_verts.npy --audio_pkl_path processed_audio_deepspeech.pkl \
        --idx_map_path subj_seq_to_idx.pkl --template_path templates.pkl \
        --template_ply_path FLAME_sample.ply --epochs 100 --batch_size 32 --output_model best_model.pt

With no data flags it runs on the built-in synthetic corpus. A thin wrapper over
`vocagan pipeline --model transformer`; the model is this file's name (see `vocagan pipeline --help`
for every option).
"""

import sys

from vocagan.cli import seed_script

if __name__ == "__main__":
    raise SystemExit(seed_script(__file__, sys.argv[1:]))
