"""The layers of the model, each a pair of functions in the style of cs231n's `layers.py`:

    out, cache = op_forward(x, weights...)      # cache: exactly what the backward pass needs
    dx, dweights... = op_backward(dout, cache)

Caches belong to one call, never to an object: the recursive block runs the same weights several
times in one forward pass, and each run keeps its own cache.

embedding.py      token + learned position embedding
linear.py         y = x @ W (no bias)
dyt.py            Dynamic Tanh normalisation, gamma * tanh(alpha * x) + beta
swiglu.py         the feed-forward network, (silu(u W1) * (u W3)) W2
attention.py      multi-head causal self-attention with CoPE positions
cross_entropy.py  softmax cross-entropy over the vocabulary with a target mask
"""
