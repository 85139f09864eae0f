"""PyTorch's side of the local-training comparison run by bench/train.sh.

    python train_torch.py MODEL EXAMPLES BATCH REPS THREADS

The same models as ByzFL's models.py (logreg_mnist, fc_mnist, cnn_mnist), the same
optimiser settings and loop as bench/train_bench.rs: one warm-up epoch, then REPS timed
epochs over EXAMPLES random 28x28 images; prints `samples_per_s <model> <median>`.
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LogregMnist(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(784, 10)

    def forward(self, x):
        return self.linear(x.flatten(1))


class FcMnist(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class CnnMnist(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5, 1)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


MODELS = {"logreg_mnist": LogregMnist, "fc_mnist": FcMnist, "cnn_mnist": CnnMnist}


def epoch(model, opt, x, y, batch):
    order = torch.randperm(len(x))
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()


def main():
    name, examples, batch, reps, threads = sys.argv[1], *map(int, sys.argv[2:6])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = MODELS[name]()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.rand(examples, 1, 28, 28)
    y = torch.arange(examples) % 10
    epoch(model, opt, x, y, batch)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        epoch(model, opt, x, y, batch)
        times.append(time.perf_counter() - start)
    print(f"samples_per_s {name} {examples / statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
