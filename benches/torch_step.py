"""The attack training step of benches/step.rs in PyTorch (eager, CPU), for comparison.

One discriminator and one generator Adam step on a [256, 1, 28, 28] batch, the attack
gradient backpropagated through a frozen small CNN victim (conv 3x3 s2 1->16, ReLU,
conv 3x3 s2 16->32, ReLU, linear -> 10, softmax). Architectures, losses and
hyper-parameters follow the reference code (AdvGAN generator / patch discriminator,
least-squares GAN, L_adv = sum_i 0.5 ||C(x_adv_i) - C(x_i)||^2, Linf clip eps 0.07,
lambda_adv 5, lambda_pert 1, Adam lr 1e-3 betas (0.9, 0.999)).

    python benches/torch_step.py --threads 2 --steps 20
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.BatchNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.BatchNorm2d(dim),
        )

    def forward(self, x):
        return x + self.block(x)


class Generator(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c, 8, 3, 1, 0, bias=True), nn.InstanceNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 0, bias=True), nn.InstanceNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 0, bias=True), nn.InstanceNorm2d(32), nn.ReLU(),
            *[ResnetBlock(32) for _ in range(4)],
            nn.ConvTranspose2d(32, 16, 3, 2, 0, bias=False), nn.InstanceNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 8, 3, 2, 0, bias=False), nn.InstanceNorm2d(8), nn.ReLU(),
            nn.ConvTranspose2d(8, c, 6, 1, 0, bias=False), nn.Tanh(),
        )

    def forward(self, x):
        return self.net(x)


class Discriminator(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c, 8, 4, 2, 0, bias=True), nn.LeakyReLU(0.2),
            nn.Conv2d(8, 16, 4, 2, 0, bias=True), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 4, 2, 0, bias=True), nn.BatchNorm2d(32), nn.LeakyReLU(0.2),
            nn.Conv2d(32, 1, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.net(x)


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 2)
        self.conv2 = nn.Conv2d(16, 32, 3, 2)
        self.head = nn.Linear(32 * 6 * 6, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.softmax(self.head(x.flatten(1)), dim=1)


def weights_init(m):
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    eps, lambda_adv, lambda_pert = 0.07, 5.0, 1.0
    g, d, victim = Generator(1), Discriminator(1), SmallCnn().eval()
    g.apply(weights_init)
    d.apply(weights_init)
    for p in victim.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.9, 0.999))
    x = torch.rand(args.batch, 1, 28, 28)

    def step():
        with torch.no_grad():
            m_clean = victim(x)
        delta = g(x)
        x_adv = torch.clamp(x + torch.clamp(delta, -eps, eps), 0.0, 1.0)
        # Discriminator.
        opt_d.zero_grad()
        pred_real = d(x)
        pred_fake = d(x_adv.detach())
        loss_d = F.mse_loss(pred_real, torch.ones_like(pred_real)) + F.mse_loss(
            pred_fake, torch.zeros_like(pred_fake))
        loss_d.backward()
        opt_d.step()
        # Generator.
        opt_g.zero_grad()
        pred_fake = d(x_adv)
        loss_gan = F.mse_loss(pred_fake, torch.ones_like(pred_fake))
        loss_pert = torch.mean(torch.norm(delta.view(delta.shape[0], -1), 2, dim=1))
        loss_adv = 0.5 * torch.sum((victim(x_adv) - m_clean) ** 2)
        loss_g = loss_gan + lambda_pert * loss_pert - lambda_adv * loss_adv
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    mean = sum(times) / len(times)
    print(f"torch {torch.__version__}, {args.threads} threads, batch [{args.batch},1,28,28]: "
          f"mean {mean * 1e3:.1f} ms, median {times[len(times) // 2] * 1e3:.1f} ms, "
          f"min {times[0] * 1e3:.1f} ms per step")


if __name__ == "__main__":
    main()
