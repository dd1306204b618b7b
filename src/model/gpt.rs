//! The GPT-2 architecture, written as a function of a flat parameter list.
//!
//! Token embeddings plus learned position embeddings; pre-LayerNorm blocks with causal
//! multi-head attention and a 4× MLP, all with biases; **exact (erf) GELU** — note that Hugging
//! Face's GPT-2 default is the tanh approximation (`gelu_new`), which imported models keep (see
//! [`Activation`]); a final LayerNorm; and an LM head tied to the token embedding. Linear weights are stored `[in, out]` under Hugging Face GPT-2
//! names (its Conv1D layout), so exporting is a rename-free copy.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::module::{embedding, layer_norm, linear};
use burn::tensor::{Bool, Distribution, FloatDType, Int, Tensor};
use rand::SeedableRng;

use super::activation::Activation;
use super::fused;
use super::params::{normal_fill, HostParams, ParamSpec};
use crate::config::ModelConfig;

/// LayerNorm epsilon, as in GPT-2 and PyTorch's default.
pub const LN_EPS: f64 = 1e-5;
/// Parameters per transformer block (see [`Gpt::new`] for their order).
const PER_BLOCK: usize = 12;

/// The dimensions of a GPT.
#[derive(Clone, Debug, PartialEq)]
pub struct GptShape {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub vocab_size: usize,
    pub dropout: f64,
    /// The MLP's GELU: exact for everything lmtrain trains from scratch; imported Hugging Face
    /// models keep theirs.
    pub activation: Activation,
}

impl From<&ModelConfig> for GptShape {
    fn from(m: &ModelConfig) -> Self {
        Self {
            n_layer: m.n_layer,
            n_head: m.n_head,
            n_embd: m.n_embd,
            block_size: m.block_size,
            vocab_size: m.vocab_size,
            dropout: m.dropout,
            activation: m.activation,
        }
    }
}

/// A GPT: its shape and the specs of its parameters. The parameter values live outside, with
/// the trainer (raw and EMA copies share this one description).
#[derive(Clone, Debug)]
pub struct Gpt {
    pub shape: GptShape,
    specs: Vec<ParamSpec>,
    /// How the forward pass computes (the same function either way, up to rounding).
    pub compute: Compute,
}

/// Alternative ways to compute the same forward pass, for speed on the GPU. The defaults are
/// burn's plain ops; each alternative is checked against them in tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compute {
    /// The operands of every matmul (the linears, QKᵀ and AV, the LM head) cast to bf16, the
    /// products cast back to f32; weights, biases, LayerNorm, softmax and the loss stay f32, and
    /// gradients come back to the f32 weights through the casts. Tensor cores run bf16 at
    /// several times their TF32 rate.
    pub bf16_matmuls: bool,
    /// The token embedding as a `gather`, whose backward is a parallel scatter-add, instead of
    /// burn's embedding op, whose backward is one `select_assign` kernel looping over every
    /// token serially.
    pub gather_embedding: bool,
    /// Attention as one op whose backward recomputes the probabilities from the per-row
    /// log-sum-exp ([`super::fused::attention`]): no `[batch, heads, T, T]` tensor is kept for
    /// the backward pass. Used where attention has a mask and no dropout.
    pub fused_attention: bool,
    /// LayerNorm as one op with a closed-form backward ([`super::fused::layer_norm`]).
    pub fused_layer_norm: bool,
    /// The training loss as one op whose backward is `softmax − one_hot`
    /// ([`super::fused::cross_entropy`]).
    pub fused_cross_entropy: bool,
    /// Causal attention's forward pass by the backend's own attention kernel (on cubecl, burn
    /// autotunes cubek's flash attention against its plain fallback; burn flex has its own), the
    /// backward pass as `fused_attention`'s, normalising the recomputed scores itself
    /// ([`super::fused::causal_attention`]). Where queries and keys align (no KV cache to
    /// extend) and there is no dropout. Not part of [`Compute::all_fused`]: unmeasured on a GPU.
    pub flash_attention: bool,
    /// The linears' bias added by an op whose gradient is summed over the tokens in two stages
    /// ([`super::fused::column_sum`]) rather than by burn's single strided reduction.
    pub fused_bias: bool,
    /// The linears and the LM head by [`super::cublaslt::linear_bf16`]: bf16 operands, f32
    /// accumulation, one graph node with a hand-written backward; cuBLASLt GEMMs with the bias
    /// fused on CUDA, the reference GEMMs elsewhere. Takes precedence over `bf16_matmuls` and
    /// `fused_bias` for the linears; set only where the device is CUDA
    /// ([`super::cublaslt::route::resolve`]).
    pub cublaslt: bool,
}

impl Compute {
    /// Every alternative that computes the same function in f32 (all but bf16 matmuls).
    pub fn all_fused() -> Self {
        Self {
            gather_embedding: true,
            fused_attention: true,
            fused_layer_norm: true,
            fused_cross_entropy: true,
            fused_bias: true,
            ..Self::default()
        }
    }

    /// `name=0|1` pairs, as the bench's RESULT line prints them.
    pub fn describe(&self) -> String {
        format!(
            "bf16_matmuls={} gather_embedding={} fused_attention={} fused_layer_norm={} fused_cross_entropy={} fused_bias={} flash_attention={} cublaslt={}",
            u8::from(self.bf16_matmuls),
            u8::from(self.gather_embedding),
            u8::from(self.fused_attention),
            u8::from(self.fused_layer_norm),
            u8::from(self.fused_cross_entropy),
            u8::from(self.fused_bias),
            u8::from(self.flash_attention),
            u8::from(self.cublaslt),
        )
    }
}

#[cfg(test)]
impl GptShape {
    /// The small shape unit tests use: 2 layers, 2 heads, width 32, context 16, vocabulary 64.
    pub fn tiny() -> Self {
        Self {
            n_layer: 2,
            n_head: 2,
            n_embd: 32,
            block_size: 16,
            vocab_size: 64,
            dropout: 0.0,
            activation: Default::default(),
        }
    }
}

/// Per-block parameter offsets, in Hugging Face order (each LayerNorm's bias follows its gain).
mod blk {
    pub const LN1_W: usize = 0;
    pub const ATTN_W: usize = 2;
    pub const ATTN_B: usize = 3;
    pub const PROJ_W: usize = 4;
    pub const PROJ_B: usize = 5;
    pub const LN2_W: usize = 6;
    pub const FC_W: usize = 8;
    pub const FC_B: usize = 9;
    pub const FC2_W: usize = 10;
    pub const FC2_B: usize = 11;
}

impl Gpt {
    pub fn new(shape: GptShape) -> Self {
        let (c, v) = (shape.n_embd, shape.vocab_size);
        let mut specs = vec![
            ParamSpec::new("transformer.wte.weight", &[v, c]),
            ParamSpec::new("transformer.wpe.weight", &[shape.block_size, c]),
        ];
        for i in 0..shape.n_layer {
            let p = format!("transformer.h.{i}");
            specs.extend([
                ParamSpec::new(format!("{p}.ln_1.weight"), &[c]),
                ParamSpec::new(format!("{p}.ln_1.bias"), &[c]),
                ParamSpec::new(format!("{p}.attn.c_attn.weight"), &[c, 3 * c]),
                ParamSpec::new(format!("{p}.attn.c_attn.bias"), &[3 * c]),
                ParamSpec::new(format!("{p}.attn.c_proj.weight"), &[c, c]),
                ParamSpec::new(format!("{p}.attn.c_proj.bias"), &[c]),
                ParamSpec::new(format!("{p}.ln_2.weight"), &[c]),
                ParamSpec::new(format!("{p}.ln_2.bias"), &[c]),
                ParamSpec::new(format!("{p}.mlp.c_fc.weight"), &[c, 4 * c]),
                ParamSpec::new(format!("{p}.mlp.c_fc.bias"), &[4 * c]),
                ParamSpec::new(format!("{p}.mlp.c_proj.weight"), &[4 * c, c]),
                ParamSpec::new(format!("{p}.mlp.c_proj.bias"), &[c]),
            ]);
        }
        specs.push(ParamSpec::new("transformer.ln_f.weight", &[c]));
        specs.push(ParamSpec::new("transformer.ln_f.bias", &[c]));
        Self {
            shape,
            specs,
            compute: Compute::default(),
        }
    }

    /// `a @ b`, in bf16 when [`Compute::bf16_matmuls`] is set.
    fn mm<const D: usize>(&self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        if self.compute.bf16_matmuls {
            a.cast(FloatDType::BF16)
                .matmul(b.cast(FloatDType::BF16))
                .cast(FloatDType::F32)
        } else {
            a.matmul(b)
        }
    }

    /// `x @ w + b`; with bf16 matmuls the bias is added in f32 after the product.
    fn lin(&self, x: Tensor<3>, w: Tensor<2>, b: Tensor<1>) -> Tensor<3> {
        if self.compute.cublaslt {
            let [bs, n, c] = x.dims();
            let out = w.dims()[1];
            return super::cublaslt::linear_bf16(x.reshape([bs * n, c]), w, Some(b), false)
                .reshape([bs, n, out]);
        }
        if !self.compute.bf16_matmuls && !self.compute.fused_bias {
            return linear(x, w, Some(b));
        }
        // Shaped before the product, so that on the GPU nothing is queued between the matmul and
        // the add, which burn's fusion can then fold into the matmul.
        let b = b.unsqueeze::<3>();
        let product = if self.compute.bf16_matmuls {
            linear(x.cast(FloatDType::BF16), w.cast(FloatDType::BF16), None).cast(FloatDType::F32)
        } else {
            linear(x, w, None)
        };
        if self.compute.fused_bias {
            fused::add_bias(product, b)
        } else {
            product + b
        }
    }

    /// LayerNorm of `x` with gain `p[w]` and bias `p[w + 1]`.
    fn ln(&self, x: Tensor<3>, p: &[Tensor<1>], w: usize) -> Tensor<3> {
        let (gain, bias) = (p[w].clone(), p[w + 1].clone());
        if self.compute.fused_layer_norm {
            fused::layer_norm(x, gain, bias, LN_EPS)
        } else {
            layer_norm(x, gain, Some(bias), LN_EPS)
        }
    }

    /// The token embedding rows of `idx` `[b, n]` → `[b, n, c]`.
    fn embed(&self, wte: Tensor<2>, idx: Tensor<2, Int>) -> Tensor<3> {
        if self.compute.gather_embedding {
            let [b, n] = idx.dims();
            let c = self.shape.n_embd;
            let rows = idx.reshape([b * n, 1]).expand([b * n, c]);
            wte.gather(0, rows).reshape([b, n, c])
        } else {
            embedding(wte, idx)
        }
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// GPT-2's initialization: N(0, 0.02) for weights and embeddings, with the residual
    /// projections (`c_proj`) scaled by 1/√(2·n_layer); zero biases; unit LayerNorm gains.
    pub fn init(&self, seed: u64) -> HostParams {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6770_7432_696e_6974);
        let proj_std = 0.02 / (2.0 * self.shape.n_layer as f64).sqrt();
        self.specs
            .iter()
            .map(|s| {
                let n = s.numel();
                if s.name.ends_with("c_proj.weight") {
                    normal_fill(&mut rng, n, proj_std)
                } else if s.shape.len() >= 2 {
                    normal_fill(&mut rng, n, 0.02)
                } else if s.name.contains(".ln_") && s.name.ends_with(".weight") {
                    vec![1.0; n]
                } else {
                    vec![0.0; n]
                }
            })
            .collect()
    }

    fn mat(&self, p: &[Tensor<1>], i: usize) -> Tensor<2> {
        let s = &self.specs[i].shape;
        p[i].clone().reshape([s[0], s[1]])
    }

    fn block_base(&self, layer: usize) -> usize {
        2 + layer * PER_BLOCK
    }

    /// Logits `[batch, time, vocab]` for token ids `[batch, time]` (time ≤ block_size).
    /// `dropout` is the probability used for this call (0 for evaluation).
    pub fn forward(&self, p: &[Tensor<1>], idx: Tensor<2, Int>, dropout: f64) -> Tensor<3> {
        self.run(p, idx, dropout, None)
    }

    /// Logits for `idx` `[batch, n]` placed after the `cache.len` tokens the cache holds, which
    /// it then also holds: each new token costs attention over the context, not a re-forward.
    /// `cache.len + n` must not exceed block_size (learned absolute positions end there).
    pub fn forward_cached(
        &self,
        p: &[Tensor<1>],
        idx: Tensor<2, Int>,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        self.run(p, idx, 0.0, Some(cache))
    }

    fn run(
        &self,
        p: &[Tensor<1>],
        idx: Tensor<2, Int>,
        dropout: f64,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let [b, n] = idx.dims();
        let (c, v) = (self.shape.n_embd, self.shape.vocab_size);
        let wte = self.mat(p, 0);
        let tok = self.embed(wte.clone(), idx);
        let x = self.trunk(p, tok, dropout, cache);
        if self.compute.cublaslt {
            super::cublaslt::linear_bf16(x.reshape([b * n, c]), wte, None, true)
        } else {
            self.mm(x.reshape([b * n, c]), wte.transpose())
        }
        .reshape([b, n, v])
    }

    /// The final-LayerNorm hidden states `[batch, time, n_embd]` for input embeddings `x`
    /// `[batch, time, n_embd]` (time ≤ block_size): learned positions (`p[1]`) added, then the
    /// causal blocks and the final LayerNorm, no dropout. Only the parameters up to the final
    /// LayerNorm are read (`p[..2 + 12·n_layer + 2]`; `p[0]` is not), so a model with its own
    /// input map and head (the transformer BC policy, `src/bc/transformer.rs`) can put its
    /// extra parameters after them.
    pub fn hidden_states(&self, p: &[Tensor<1>], x: Tensor<3>) -> Tensor<3> {
        self.trunk(p, x, 0.0, None)
    }

    /// Positions, blocks and final LayerNorm over embeddings `x` `[b, n, c]`.
    fn trunk(
        &self,
        p: &[Tensor<1>],
        x: Tensor<3>,
        dropout: f64,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let [b, n, _] = x.dims();
        let start = cache.as_ref().map_or(0, |k| k.len);
        let total = start + n;
        let wpe = self.mat(p, 1);
        let pos = wpe.narrow(0, start, n).unsqueeze::<3>();
        let mut x = apply_dropout(x + pos, dropout);
        // Query i (absolute position start + i) may not see keys after it; a single new token
        // sees everything cached, so it needs no mask.
        let mask = (n > 1).then(|| {
            Tensor::<2, Bool>::tril_mask([n, total], start as i64, &x.device())
                .unsqueeze::<4>()
                .expand([b, self.shape.n_head, n, total])
        });
        for layer in 0..self.shape.n_layer {
            let base = self.block_base(layer);
            let h = self.ln(x.clone(), p, base + blk::LN1_W);
            let kv = cache.as_deref_mut().map(|k| &mut k.layers[layer]);
            x = x + self.attention(p, base, h, mask.clone(), dropout, kv);
            let h = self.ln(x.clone(), p, base + blk::LN2_W);
            let h = self.shape.activation.apply(self.lin(
                h,
                self.mat(p, base + blk::FC_W),
                p[base + blk::FC_B].clone(),
            ));
            let h = self.lin(
                h,
                self.mat(p, base + blk::FC2_W),
                p[base + blk::FC2_B].clone(),
            );
            x = x + apply_dropout(h, dropout);
        }
        if let Some(k) = cache {
            k.len = total;
        }
        // The final LayerNorm follows the last block (not p.len() − 2: see hidden_states).
        self.ln(x, p, self.block_base(self.shape.n_layer))
    }

    fn attention(
        &self,
        p: &[Tensor<1>],
        base: usize,
        h: Tensor<3>,
        mask: Option<Tensor<4, Bool>>,
        dropout: f64,
        kv: Option<&mut LayerKv>,
    ) -> Tensor<3> {
        let [b, t, c] = h.dims();
        let nh = self.shape.n_head;
        let hd = c / nh;
        let qkv = self.lin(
            h,
            self.mat(p, base + blk::ATTN_W),
            p[base + blk::ATTN_B].clone(),
        );
        let heads = |part: usize| {
            qkv.clone()
                .slice([0..b, 0..t, part * c..(part + 1) * c])
                .reshape([b, t, nh, hd])
                .swap_dims(1, 2)
        };
        let (q, mut k, mut v) = (heads(0), heads(1), heads(2));
        if let Some(cached) = kv {
            k = cached.append_keys(k);
            v = cached.append_values(v);
        }
        let aligned = k.dims()[2] == t;
        let y = match mask {
            Some(mask) if self.compute.flash_attention && dropout <= 0.0 && aligned => {
                fused::causal_attention(q, k, v, mask, self.compute.bf16_matmuls)
            }
            Some(mask) if self.compute.fused_attention && dropout <= 0.0 => {
                fused::masked_attention(q, k, v, mask, self.compute.bf16_matmuls)
            }
            mask => {
                let mut scores = self.mm(q, k.swap_dims(2, 3)) * (1.0 / (hd as f64).sqrt());
                if let Some(mask) = mask {
                    scores = scores.mask_fill(mask, f32::NEG_INFINITY);
                }
                let att = softmax(scores, 3);
                self.mm(apply_dropout(att, dropout), v)
            }
        };
        let y = y.swap_dims(1, 2).reshape([b, t, c]);
        let y = self.lin(
            y,
            self.mat(p, base + blk::PROJ_W),
            p[base + blk::PROJ_B].clone(),
        );
        apply_dropout(y, dropout)
    }

    /// Per-token next-token cross-entropy `[batch, time]` (no dropout), for losses by position.
    pub fn token_losses(
        &self,
        p: &[Tensor<1>],
        idx: Tensor<2, Int>,
        targets: Tensor<2, Int>,
    ) -> Tensor<2> {
        let [b, t] = idx.dims();
        let logits = self.forward(p, idx, 0.0);
        let logp = log_softmax(logits.reshape([b * t, self.shape.vocab_size]), 1);
        logp.gather(1, targets.reshape([b * t, 1]))
            .reshape([b, t])
            .neg()
    }

    /// Mean next-token cross-entropy of `targets` `[batch, time]` under the logits of `idx`.
    pub fn loss(
        &self,
        p: &[Tensor<1>],
        idx: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        dropout: f64,
    ) -> Tensor<1> {
        let [b, t] = idx.dims();
        let logits = self
            .forward(p, idx, dropout)
            .reshape([b * t, self.shape.vocab_size]);
        let targets = targets.reshape([b * t]);
        if self.compute.fused_cross_entropy {
            fused::cross_entropy(logits, targets)
        } else {
            cross_entropy(logits, targets)
        }
    }
}

/// Keys and values of one layer for the tokens seen so far, `[batch, heads, len, head_dim]`.
#[derive(Clone, Debug, Default)]
pub struct LayerKv {
    k: Option<Tensor<4>>,
    v: Option<Tensor<4>>,
}

impl LayerKv {
    fn append(slot: &mut Option<Tensor<4>>, new: Tensor<4>) -> Tensor<4> {
        let all = match slot.take() {
            Some(old) => Tensor::cat(vec![old, new], 2),
            None => new,
        };
        *slot = Some(all.clone());
        all
    }
    fn append_keys(&mut self, k: Tensor<4>) -> Tensor<4> {
        Self::append(&mut self.k, k)
    }
    fn append_values(&mut self, v: Tensor<4>) -> Tensor<4> {
        Self::append(&mut self.v, v)
    }
}

/// The KV cache of a generation: one [`LayerKv`] per block and the number of tokens held.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    pub len: usize,
}

impl KvCache {
    /// Keeps only the batch rows `rows` (in that order), so that finished generations stop
    /// costing compute.
    pub fn keep_rows(&mut self, rows: Tensor<1, Int>) {
        for layer in &mut self.layers {
            for slot in [&mut layer.k, &mut layer.v] {
                if let Some(t) = slot.take() {
                    *slot = Some(t.select(0, rows.clone()));
                }
            }
        }
    }

    pub fn new(gpt: &Gpt) -> Self {
        Self {
            layers: vec![LayerKv::default(); gpt.shape.n_layer],
            len: 0,
        }
    }
}

/// Mean cross-entropy of rows of `logits` `[n, vocab]` against class ids `[n]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let logp = log_softmax(logits, 1);
    logp.gather(1, targets.reshape([n, 1])).mean().neg()
}

/// Inverted dropout: zero with probability `p`, scale survivors by 1/(1−p).
/// Randomness comes from the device's RNG, which the trainer seeds from (seed, step, micro-batch).
fn apply_dropout<const D: usize>(x: Tensor<D>, p: f64) -> Tensor<D> {
    if p <= 0.0 {
        return x;
    }
    let keep = Tensor::<D>::random(x.shape(), Distribution::Bernoulli(1.0 - p), &x.device());
    x * keep * (1.0 / (1.0 - p))
}
