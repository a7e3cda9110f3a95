"""LinearChainCRF against brute-force enumeration and against pytorch-crf."""

import itertools
import math

import pytest
import torch

from crf_clner import LinearChainCRF, _forward_backward, _LogPartition, scheme_constraints

BIO = ["O", "B-a", "I-a", "B-b", "I-b"]
BIOES = ["O", "B-a", "I-a", "E-a", "S-a"]


def random_crf(labels, scheme=None, seed=0, scale=1.0):
    torch.manual_seed(seed)
    crf = LinearChainCRF(len(labels), scheme_constraints(labels, scheme) if scheme else None).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, scale)
    return crf


def random_batch(bsz, seq_len, num_tags, seed=0, lengths=None):
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(bsz, seq_len, num_tags, generator=g, dtype=torch.float64) * 2
    if lengths is None:
        lengths = torch.randint(0, seq_len + 1, (bsz,), generator=g)
    lengths = torch.as_tensor(lengths)
    mask = torch.arange(seq_len)[None, :] < lengths[:, None]
    tags = torch.randint(0, num_tags, (bsz, seq_len), generator=g)
    return emissions, mask, tags


def brute_force(crf, emissions, mask):
    """Score every path of every row: returns per row a dict path -> score (constrained moves give -inf)."""
    with torch.no_grad():
        start, trans, end = (x.detach() for x in crf._scores(torch.float64))
    out = []
    for b in range(emissions.shape[0]):
        n = int(mask[b].sum())
        scores = {}
        for path in itertools.product(range(crf.num_tags), repeat=n):
            if n == 0:
                scores[path] = 0.0
                continue
            s = start[path[0]] + end[path[-1]] + sum(emissions[b, t, path[t]] for t in range(n))
            s = s + sum(trans[path[t - 1], path[t]] for t in range(1, n))
            scores[path] = float(s)
        out.append(scores)
    return out


def logsumexp(values):
    values = [v for v in values if v != -math.inf]
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


CASES = [(None, BIO), ("BIO", BIO), ("BIOES", BIOES)]


@pytest.mark.parametrize("scheme,labels", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_against_brute_force(scheme, labels, seed):
    crf = random_crf(labels, scheme, seed)
    emissions, mask, tags = random_batch(6, 5, len(labels), seed, lengths=[5, 3, 1, 0, 4, 2])
    paths = brute_force(crf, emissions, mask)

    log_z = crf.log_partition(emissions, mask)
    best = crf.viterbi_decode(emissions, mask)
    marg = crf.marginals(emissions, mask)
    marg_t = crf.marginals(emissions, mask, temperature=0.3)
    for b, scores in enumerate(paths):
        n = int(mask[b].sum())
        if n == 0:
            assert log_z[b].item() == 0.0
            assert (best[b] == -1).all()
            assert marg[b].abs().sum().item() == 0.0
            continue
        ref_z = logsumexp(scores.values())
        assert log_z[b].item() == pytest.approx(ref_z, abs=1e-9)
        ref_path = max(scores, key=scores.get)
        assert best[b, :n].tolist() == list(ref_path)
        assert (best[b, n:] == -1).all()
        # marginals: p(y_t = c) = sum over paths through c at t
        ref_marg = torch.zeros(n, len(labels), dtype=torch.float64)
        for path, s in scores.items():
            if s == -math.inf:
                continue
            for t, c in enumerate(path):
                ref_marg[t, c] += math.exp(s - ref_z)
        torch.testing.assert_close(marg[b, :n], ref_marg, atol=1e-9, rtol=1e-7)
        assert marg[b, n:].abs().sum().item() == 0.0
        ref_t = torch.softmax(torch.log(ref_marg) / 0.3, dim=-1)
        torch.testing.assert_close(marg_t[b, :n], ref_t, atol=1e-7, rtol=1e-6)
        # NLL of a valid path (the best one) and of a random one when it is allowed
        gold = torch.full((1, 5), 0, dtype=torch.long)
        gold[0, :n] = torch.tensor(ref_path)
        nll = crf.nll(emissions[b : b + 1], gold, mask[b : b + 1])
        assert nll.item() == pytest.approx(ref_z - scores[ref_path], abs=1e-9)


def test_nll_matches_brute_force_random_tags_unconstrained():
    crf = random_crf(BIO, None, 3)
    emissions, mask, tags = random_batch(8, 4, len(BIO), 3)
    paths = brute_force(crf, emissions, mask)
    nll = crf.nll(emissions, tags, mask)
    for b, scores in enumerate(paths):
        n = int(mask[b].sum())
        ref = logsumexp(scores.values()) - scores[tuple(tags[b, :n].tolist())] if n else 0.0
        assert nll[b].item() == pytest.approx(ref, abs=1e-9)


def test_constraints_are_respected_and_switchable():
    crf = random_crf(BIO, "BIO", 4)
    with torch.no_grad():  # make the forbidden O -> I-a move very attractive
        crf.transitions[0, 2] = 50.0
        crf.start_transitions[2] = 50.0
    emissions, mask, _ = random_batch(16, 7, len(BIO), 4, lengths=[7] * 16)
    paths = crf.viterbi_decode(emissions, mask)
    for row in paths.tolist():
        assert row[0] not in (2, 4)
        for a, b in zip(row, row[1:]):
            if b == 2:
                assert a in (1, 2)
            if b == 4:
                assert a in (3, 4)
    marg = crf.marginals(emissions, mask)
    assert marg[:, 0, 2].max().item() < 1e-12  # I-a cannot start
    crf.use_constraints = False
    assert (crf.viterbi_decode(emissions, mask)[:, 0] == 2).any()
    # a gold path that breaks the scheme is an error, not an infinite loss
    crf.use_constraints = True
    bad = torch.zeros(1, 7, dtype=torch.long)
    bad[0, 3] = 2  # O -> I-a
    with pytest.raises(ValueError, match="violate"):
        crf.nll(emissions[:1], bad, mask[:1])


def test_scheme_constraints_tables():
    start, trans, end = scheme_constraints(BIOES, "BIOES")
    idx = {label: i for i, label in enumerate(BIOES)}
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert trans[idx["B-a"], idx["I-a"]] and trans[idx["B-a"], idx["E-a"]]
    assert not trans[idx["B-a"], idx["O"]] and not trans[idx["E-a"], idx["I-a"]]
    assert trans[idx["S-a"], idx["B-a"]] and not trans[idx["O"], idx["E-a"]]
    _, trans, _ = scheme_constraints(["O", "B-a", "I-a", "B-b", "I-b"], "BIO")
    assert not trans[1, 4] and trans[1, 2] and trans[2, 2] and not trans[0, 2] and trans[4, 3]
    with pytest.raises(ValueError, match="BIOES"):
        scheme_constraints(BIOES, "BIO")


def test_matches_pytorch_crf():
    torchcrf = pytest.importorskip("torchcrf")
    torch.manual_seed(0)
    num_tags = 13
    ref = torchcrf.CRF(num_tags, batch_first=True)
    ours = LinearChainCRF(num_tags)
    with torch.no_grad():
        ours.start_transitions.copy_(ref.start_transitions)
        ours.end_transitions.copy_(ref.end_transitions)
        ours.transitions.copy_(ref.transitions)
    for seed, (bsz, seq_len) in enumerate([(1, 20), (16, 33), (32, 128)]):
        emissions, mask, tags = random_batch(bsz, seq_len, num_tags, seed)
        emissions = emissions.float()
        lengths = mask.sum(1)
        lengths[0] = seq_len  # torchcrf needs the first time step of every row on
        mask = torch.arange(seq_len)[None] < lengths.clamp_min(1)[:, None]
        llh = ref(emissions, tags, mask, reduction="none")
        torch.testing.assert_close(-ours.nll(emissions, tags, mask), llh, atol=1e-4, rtol=1e-5)
        decoded = ours.viterbi_decode(emissions, mask)
        for row, ref_row, n in zip(decoded.tolist(), ref.decode(emissions, mask), mask.sum(1).tolist()):
            assert row[:n] == ref_row


def test_gradients():
    crf = random_crf(BIO, "BIO", 5, scale=0.5)
    emissions, mask, tags = random_batch(4, 6, len(BIO), 5, lengths=[6, 4, 1, 0])
    valid = crf.viterbi_decode(emissions, mask).clamp_min(0)  # a path the constraints allow
    emissions.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: crf.nll(e, valid, mask), (emissions,))
    assert torch.autograd.gradcheck(lambda e: crf.marginals(e, mask, temperature=0.3), (emissions,))

    # the closed-form backward of log Z against autograd through the plain recursion, parameters included
    params = tuple(
        p.detach().clone().requires_grad_(True) for p in (crf.start_transitions, crf.transitions, crf.end_transitions)
    )
    allowed = (crf.allowed_start, crf.allowed_transitions, crf.allowed_end)
    weights = torch.randn(4, dtype=torch.float64)

    def constrained():
        return [p.masked_fill(~a, -math.inf) for p, a in zip(params, allowed)]

    ref = _forward_backward(emissions, mask, *constrained(), need_beta=False)[2]
    ref = torch.where(mask[:, 0], ref, torch.zeros_like(ref))  # as log_partition does for all-masked rows
    g_ref = torch.autograd.grad((ref * weights).sum(), (emissions, *params))
    fast = _LogPartition.apply(emissions, mask, *constrained())
    fast = torch.where(mask[:, 0], fast, torch.zeros_like(fast))
    g_fast = torch.autograd.grad((fast * weights).sum(), (emissions, *params))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_numerically_safe_long_and_masked():
    crf = random_crf(BIO, "BIO", 6)
    crf.float()
    emissions = torch.randn(3, 512, len(BIO)) * 20
    mask = torch.zeros(3, 512, dtype=torch.bool)
    mask[0] = True
    mask[1, :300] = True  # row 2 all masked
    tags = crf.viterbi_decode(emissions, mask).clamp_min(0)
    emissions.requires_grad_(True)
    loss = crf.nll(emissions, tags, mask)
    assert torch.isfinite(loss).all() and loss[2].item() == 0.0 and (loss[:2] >= -1e-3).all()
    marg = crf.marginals(emissions, mask, temperature=0.3)
    (loss.sum() + marg.sum()).backward()
    assert torch.isfinite(emissions.grad).all()
    assert torch.isfinite(marg).all()
    torch.testing.assert_close(marg[0].sum(-1), torch.ones(512))
    assert marg[1, 300:].sum().item() == 0.0


def test_bad_input_errors():
    crf = LinearChainCRF(5)
    e = torch.randn(2, 4, 5)
    with pytest.raises(ValueError, match="num_tags|tags"):
        crf.log_partition(torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match="mask shape"):
        crf.log_partition(e, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="contiguous"):
        crf.log_partition(e, torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match=r"tags must be in \[0, 5\)"):
        crf.nll(e, torch.full((2, 4), 7), torch.ones(2, 4, dtype=torch.bool))


def test_crf_module_reset_matches_pytorch_crf_init():
    crf = LinearChainCRF(7)
    for p in crf.parameters():
        assert p.min() >= -0.1 and p.max() <= 0.1
