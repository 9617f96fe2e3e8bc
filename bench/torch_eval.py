#!/usr/bin/python3
"""PyTorch side of `npm run bench -- eval`.

  /usr/bin/python3 bench/torch_eval.py export OUT.onnx        writes torchvision's MobileNetV2 (self-initialised
                                                               weights, 1000 classes) at 224x224 as ONNX (opset 13)
  /usr/bin/python3 bench/torch_eval.py time BATCH THREADS SECS  prints {"imagesPerSec": ...} of float inference
"""
import json
import sys
import time

import torch
import torchvision


def model():
    torch.manual_seed(0)
    m = torchvision.models.mobilenet_v2(weights=None)
    m.eval()
    return m


def main():
    cmd = sys.argv[1]
    if cmd == "export":
        torch.onnx.export(model(), torch.rand(1, 3, 224, 224), sys.argv[2], opset_version=13, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        return
    batch, threads, secs = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    torch.set_num_threads(threads)
    m = model()
    x = torch.rand(batch, 3, 224, 224)
    with torch.inference_mode():
        m(x)
        runs = []
        t_end = time.perf_counter() + secs
        while time.perf_counter() < t_end or len(runs) < 3:
            t0 = time.perf_counter()
            m(x)
            runs.append(time.perf_counter() - t0)
    runs.sort()
    med = runs[len(runs) // 2]
    print(json.dumps({"imagesPerSec": batch / med, "runs": len(runs), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
