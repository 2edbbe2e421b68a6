/* tests/bench/roofline.h — the GPU projection of `bagel bench --backend count --project`:
 * each op the counting backend reports (kernels/ops.h, BkCountOp) costs
 *     t = max( FLOP / (peak of its class · efficiency),  bytes / (HBM bandwidth · 0.8) )
 *         + a fixed launch cost,
 * from the device's published peaks.  Efficiencies are stated, not measured: what
 * cuBLASLt / flash-attention class kernels reach on large shapes (docs/performance.md
 * gives the table and where each number comes from).  Variants answer design questions:
 * FP8 weights (weight bytes halved; W8A8 also doubles the GEMM peak), and the CFG branches
 * batched into one forward (weights read once per step, one launch per op). */
#ifndef BAGEL_BENCH_ROOFLINE_H
#define BAGEL_BENCH_ROOFLINE_H

#include "ops.h"

typedef struct {
  const char *id;            /* "h100", "h200" */
  const char *name;          /* device string for the results file */
  double bf16_tflops;        /* dense tensor-core peaks */
  double fp8_tflops;
  double tf32_tflops;
  double hbm_gb_s;
  double pcie_gb_s;          /* host <-> device, per direction */
} RoofDevice;

typedef enum {
  ROOF_BASE = 0,   /* bf16 weights and GEMMs, one forward per CFG branch */
  ROOF_FP8_W,      /* FP8 weights, dequantised in the GEMM (bf16 math) */
  ROOF_FP8_W8A8,   /* FP8 weights and activations: FP8 tensor-core peak */
  ROOF_CFG_BATCH,  /* the step's CFG branches as one batch */
  ROOF_NVARIANTS
} RoofVariant;

typedef struct {
  double gemm, attention, conv, memory;   /* share of peak / of bandwidth reached */
  double launch_s;                        /* per op */
} RoofEfficiency;

extern const RoofEfficiency roof_eff;

/* NULL when the id is unknown. */
const RoofDevice *roof_device(const char *id);
const char *roof_variant_name(RoofVariant v);

/* Projected seconds of one op on `d` under variant v; `branches` = how many CFG branches
 * the current denoise step runs (1 outside the loop; only ROOF_CFG_BATCH uses it). */
double roof_op_seconds(const RoofDevice *d, RoofVariant v, const BkCountOp *op, int branches);

#endif
