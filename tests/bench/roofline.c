/* tests/bench/roofline.c — the projection model (roofline.h). */
#include "roofline.h"

#include <string.h>

/* NVIDIA's published dense peaks (H100 SXM5 and H200 SXM datasheets; the "with sparsity"
 * figures halved).  The VAE runs in fp32 as the official code does, where PyTorch's
 * default (torch.backends.cudnn.allow_tf32 = True) sends its convolutions to the TF32
 * tensor cores. */
static const RoofDevice devices[] = {
  {"h100", "NVIDIA H100 SXM5 80GB (projected)", 989.4, 1978.9, 494.7, 3350, 55},
  {"h200", "NVIDIA H200 SXM 141GB (projected)", 989.4, 1978.9, 494.7, 4800, 55},
};

/* cuBLASLt bf16 GEMMs of these sizes: ~70% of peak; flash-attention-2 class forward
 * kernels on H100: ~50%; cuDNN TF32 3×3 convolutions: ~50%; streaming kernels: 80% of
 * HBM; ~3 µs per launch on one stream without CUDA graphs. */
const RoofEfficiency roof_eff = {.gemm = 0.70, .attention = 0.50, .conv = 0.50, .memory = 0.80,
                                 .launch_s = 3e-6};

const RoofDevice *roof_device(const char *id) {
  for (size_t i = 0; i < sizeof devices / sizeof *devices; i++)
    if (!strcmp(devices[i].id, id)) return &devices[i];
  return NULL;
}

const char *roof_variant_name(RoofVariant v) {
  static const char *names[ROOF_NVARIANTS] = {"bf16", "fp8-weights", "fp8-w8a8", "cfg-batched"};
  return (unsigned)v < ROOF_NVARIANTS ? names[v] : "?";
}

static double maxd(double a, double b) { return a > b ? a : b; }

double roof_op_seconds(const RoofDevice *d, RoofVariant v, const BkCountOp *op, int branches) {
  const double bw = d->hbm_gb_s * 1e9 * roof_eff.memory;
  double bytes = op->bytes, launch = roof_eff.launch_s;
  if (op->cls == BK_CLASS_TRANSFER) return op->bytes / (d->pcie_gb_s * 1e9) + launch;
  double peak;
  switch (op->cls) {
  case BK_CLASS_GEMM: peak = d->bf16_tflops * 1e12 * roof_eff.gemm; break;
  case BK_CLASS_ATTENTION: peak = d->bf16_tflops * 1e12 * roof_eff.attention; break;
  case BK_CLASS_CONV: peak = d->tf32_tflops * 1e12 * roof_eff.conv; break;
  default: peak = 0; break;
  }
  if (op->cls == BK_CLASS_GEMM) {
    if (v == ROOF_FP8_W || v == ROOF_FP8_W8A8) bytes -= op->weight_bytes / 2;
    if (v == ROOF_FP8_W8A8) peak = d->fp8_tflops * 1e12 * roof_eff.gemm;
  }
  if (v == ROOF_CFG_BATCH && branches > 1) {
    /* this op's share of one batched op over `branches` identical rows sets: the weights
     * are read once, the launch is paid once */
    bytes -= op->weight_bytes * (1.0 - 1.0 / branches);
    launch /= branches;
  }
  const double t_compute = peak > 0 ? op->flops / peak : 0;
  return maxd(t_compute, bytes / bw) + launch;
}
