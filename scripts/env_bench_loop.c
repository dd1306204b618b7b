// The bare C baseline for scripts/env_bench.sh: Walker2d-v4's physics with no environment layer.
// Each thread owns one mjData on the shared mjModel and runs the same work per environment step
// as Gymnasium and lmtrain: write ctrl from a pre-drawn random action, mj_step frame_skip (4)
// times, mj_rnePostConstraint; when the walker falls (v4's health check) or 1000 steps pass, it
// resets (mj_resetData, qpos0 + uniform noise, mj_forward). Prints one RESULT line.
//
//   env_bench_loop MODEL.xml STEPS THREADS

#include <mujoco/mujoco.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define FRAME_SKIP 4
#define POOL 1000
#define MAX_EPISODE_STEPS 1000

static mjModel* model;
static long steps_per_thread;
static long episodes[64];

// xorshift64*, a small seeded generator; the draws only need to be uniform.
static double uniform01(unsigned long long* s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void reset(mjData* d, unsigned long long* s) {
  mj_resetData(model, d);
  for (int i = 0; i < model->nq; i++) d->qpos[i] = model->qpos0[i] + (uniform01(s) * 2 - 1) * 5e-3;
  for (int i = 0; i < model->nv; i++) d->qvel[i] = (uniform01(s) * 2 - 1) * 5e-3;
  mj_forward(model, d);
}

static void* run(void* arg) {
  unsigned long long s = 88172645463325252ULL + (unsigned long long)(size_t)arg;
  int nu = model->nu;
  double* pool = malloc(sizeof(double) * POOL * nu);
  for (int i = 0; i < POOL * nu; i++) pool[i] = uniform01(&s) * 2 - 1;
  mjData* d = mj_makeData(model);
  reset(d, &s);
  int episode_step = 0;
  for (long t = 0; t < steps_per_thread; t++) {
    const double* a = pool + (t % POOL) * nu;
    for (int i = 0; i < nu; i++) d->ctrl[i] = a[i];
    for (int k = 0; k < FRAME_SKIP; k++) mj_step(model, d);
    mj_rnePostConstraint(model, d);
    episode_step++;
    double z = d->qpos[1], angle = d->qpos[2];
    int healthy = z > 0.8 && z < 2.0 && angle > -1.0 && angle < 1.0;
    if (!healthy || episode_step >= MAX_EPISODE_STEPS) {
      reset(d, &s);
      episode_step = 0;
      episodes[(size_t)arg]++;
    }
  }
  mj_deleteData(d);
  free(pool);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL.xml STEPS THREADS\n", argv[0]);
    return 2;
  }
  char err[1000];
  model = mj_loadXML(argv[1], NULL, err, sizeof(err));
  if (!model) {
    fprintf(stderr, "cannot load %s: %s\n", argv[1], err);
    return 1;
  }
  long steps = atol(argv[2]);
  int threads = atoi(argv[3]);
  if (steps <= 0 || threads <= 0 || threads > 64) {
    fprintf(stderr, "STEPS and THREADS must be positive (THREADS at most 64)\n");
    return 2;
  }
  steps_per_thread = steps / threads;
  pthread_t tid[64];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, run, (void*)(size_t)i);
  for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  long total = steps_per_thread * threads, ended = 0;
  for (int i = 0; i < threads; i++) ended += episodes[i];
  printf("RESULT impl=c threads=%d steps=%ld episodes=%ld seconds=%.3f steps_per_s=%.0f\n", threads,
         total, ended, seconds, total / seconds);
  mj_deleteModel(model);
  return 0;
}
