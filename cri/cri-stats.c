/* SPDX-License-Identifier: MIT */
/* Stats kubelet builds its summary from (ContainerStats, ListContainerStats,
 * PodSandboxStats, ListPodSandboxStats): each running container's cgroup in the guest
 * through its shim's Stats (CPU, memory, pids), its writable layer's usage on the host
 * (walked on a worker, the last figure served), and a pod's network from its
 * interface in the pod's network namespace. A pod's CPU and memory are its containers'
 * summed: the VM's own overhead is the pod's RuntimeClass overhead, not a container's.
 * Calls that need several shims ask them all at once and answer when every one has
 * (or has timed out: that container is left out, as containerd leaves out a task it
 * cannot reach). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cni.h"
#include "cri-internal.h"
#include "log.h"
#include "shim-events.pb-c.h"
#include "ttrpc.h"
#include "util.h"

struct sample {
	char *ctr_id;
	bool ok;
	int64_t ts;
	uint64_t cpu_ns, mem, mem_limit, pids;
};

struct gather {
	struct cri *c;
	struct grpc_call *call;
	enum { ONE_CTR, LIST_CTR, ONE_POD, LIST_POD } kind;
	char *pod_id; /* ONE_POD */
	struct sample *s;
	size_t n, pending;
	void *filter; /* the request (ListContainerStats / ListPodSandboxStats), owned */
};

/* ---- the writable layer, walked off the loop ---- */

struct layer_walk {
	char *ctr_id, *upper;
	uint64_t bytes, inodes;
};

static __thread struct layer_walk *walking;

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path, (void)flag, (void)f;
	walking->bytes += (uint64_t)st->st_blocks * 512;
	walking->inodes++;
	return 0;
}

static void layer_work(void *arg)
{
	struct layer_walk *w = arg;
	walking = w;
	(void)nftw(w->upper, walk_one, 16, FTW_PHYS | FTW_MOUNT);
	walking = NULL;
}

static void layer_done(struct cri *c, void *arg)
{
	struct layer_walk *w = arg;
	for (struct cri_ctr *k = c->ctrs; k; k = k->next)
		if (strcmp(k->id, w->ctr_id) == 0) {
			k->layer_bytes = w->bytes;
			k->layer_inodes = w->inodes;
			k->layer_walking = false;
		}
	free(w->ctr_id);
	free(w->upper);
	free(w);
}

static void refresh_layer(struct cri_ctr *k)
{
	struct layer_walk *w;
	if (k->layer_walking)
		return;
	w = xcalloc(1, sizeof(*w));
	w->ctr_id = xstrdup(k->id);
	w->upper = xasprintf("%s/upper", k->dir);
	k->layer_walking = true;
	if (cri_run_work(k->c, layer_work, layer_done, w) < 0) {
		k->layer_walking = false;
		free(w->ctr_id);
		free(w->upper);
		free(w);
	}
}

/* ---- building answers ---- */

static Runtime__V1__UInt64Value *u64(Runtime__V1__UInt64Value *slot, uint64_t v)
{
	runtime__v1__uint64_value__init(slot);
	slot->value = v;
	return slot;
}

/* What one container's stats message borrows; freed by stats_parts_done. */
struct stats_parts {
	Runtime__V1__ContainerStats st;
	Runtime__V1__ContainerAttributes attr;
	Runtime__V1__CpuUsage cpu;
	Runtime__V1__MemoryUsage mem;
	Runtime__V1__FilesystemUsage fs;
	Runtime__V1__FilesystemIdentifier fs_id;
	Runtime__V1__UInt64Value v[7];
	void *labels, *annotations;
	size_t n_labels, n_annotations;
};

static void stats_parts_done(struct stats_parts *sp)
{
	kv_free(sp->labels, sp->n_labels);
	kv_free(sp->annotations, sp->n_annotations);
}

static void fill_ctr_stats(struct cri_ctr *k, const struct sample *s, struct stats_parts *sp)
{
	runtime__v1__container_stats__init(&sp->st);
	runtime__v1__container_attributes__init(&sp->attr);
	runtime__v1__cpu_usage__init(&sp->cpu);
	runtime__v1__memory_usage__init(&sp->mem);
	runtime__v1__filesystem_usage__init(&sp->fs);
	runtime__v1__filesystem_identifier__init(&sp->fs_id);
	sp->attr.id = k->id;
	sp->attr.metadata = k->config->metadata;
	sp->n_labels = sp->attr.n_labels = k->config->n_labels;
	sp->labels = sp->attr.labels =
	    kv_copy(&runtime__v1__container_attributes__labels_entry__descriptor,
	            (void *const *)k->config->labels, k->config->n_labels);
	sp->n_annotations = sp->attr.n_annotations = k->config->n_annotations;
	sp->annotations = sp->attr.annotations =
	    kv_copy(&runtime__v1__container_attributes__annotations_entry__descriptor,
	            (void *const *)k->config->annotations, k->config->n_annotations);
	sp->st.attributes = &sp->attr;
	if (s && s->ok) {
		sp->cpu.timestamp = s->ts;
		sp->cpu.usage_core_nano_seconds = u64(&sp->v[0], s->cpu_ns);
		/* A rate needs two samples: the previous one this container gave. */
		if (k->prev_cpu_ts && s->ts > k->prev_cpu_ts && s->cpu_ns >= k->prev_cpu_ns)
			sp->cpu.usage_nano_cores =
			    u64(&sp->v[1], (uint64_t)((double)(s->cpu_ns - k->prev_cpu_ns) * 1e9 /
			                              (double)(s->ts - k->prev_cpu_ts)));
		k->prev_cpu_ts = s->ts;
		k->prev_cpu_ns = s->cpu_ns;
		sp->mem.timestamp = s->ts;
		sp->mem.working_set_bytes = u64(&sp->v[2], s->mem);
		sp->mem.usage_bytes = u64(&sp->v[3], s->mem);
		if (s->mem_limit && s->mem_limit != UINT64_MAX && s->mem_limit > s->mem)
			sp->mem.available_bytes = u64(&sp->v[4], s->mem_limit - s->mem);
		sp->st.cpu = &sp->cpu;
		sp->st.memory = &sp->mem;
	}
	sp->fs.timestamp = cri_now_ns();
	sp->fs_id.mountpoint = k->dir;
	sp->fs.fs_id = &sp->fs_id;
	sp->fs.used_bytes = u64(&sp->v[5], k->layer_bytes);
	sp->fs.inodes_used = u64(&sp->v[6], k->layer_inodes);
	sp->st.writable_layer = &sp->fs;
	refresh_layer(k);
}

static const struct sample *sample_of(const struct gather *g, const char *id)
{
	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->s[i].ctr_id, id) == 0)
			return &g->s[i];
	return NULL;
}

/* The pod's interface counters, read in its network namespace. */
struct net_read {
	uint64_t rx, rx_err, tx, tx_err;
	bool ok;
};

static int read_net_dev(void *userdata)
{
	struct net_read *nr = userdata;
	_cleanup_free_ char *text = read_small("/proc/thread-self/net", "dev");
	for (char *line = text ? strchr(text, '\n') : NULL; line && *line;) {
		char name[64];
		unsigned long long v[16];
		line++;
		if (sscanf(line, " %63[^:]: %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		           name, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
		           &v[9], &v[10]) == 12 &&
		    strcmp(name, "eth0") == 0) {
			nr->rx = v[0];
			nr->rx_err = v[2];
			nr->tx = v[8];
			nr->tx_err = v[10];
			nr->ok = true;
		}
		line = strchr(line, '\n');
	}
	return 0;
}

struct pod_parts {
	Runtime__V1__PodSandboxStats st;
	Runtime__V1__PodSandboxAttributes attr;
	Runtime__V1__LinuxPodSandboxStats linux;
	Runtime__V1__CpuUsage cpu;
	Runtime__V1__MemoryUsage mem;
	Runtime__V1__ProcessUsage proc;
	Runtime__V1__NetworkUsage net;
	Runtime__V1__NetworkInterfaceUsage iface;
	Runtime__V1__UInt64Value v[8];
	struct stats_parts *ctrs;
	Runtime__V1__ContainerStats **ctr_ptrs;
	size_t n_ctrs;
	void *labels, *annotations;
	size_t n_labels, n_annotations;
};

static void pod_parts_done(struct pod_parts *pp)
{
	for (size_t i = 0; i < pp->n_ctrs; i++)
		stats_parts_done(&pp->ctrs[i]);
	free(pp->ctrs);
	free(pp->ctr_ptrs);
	kv_free(pp->labels, pp->n_labels);
	kv_free(pp->annotations, pp->n_annotations);
}

static void fill_pod_stats(struct cri *c, struct cri_pod *p, const struct gather *g,
                           struct pod_parts *pp)
{
	uint64_t cpu = 0, mem = 0, pids = 0;
	int64_t now = cri_now_ns();
	size_t n = 0;

	memset(pp, 0, sizeof(*pp));
	runtime__v1__pod_sandbox_stats__init(&pp->st);
	runtime__v1__pod_sandbox_attributes__init(&pp->attr);
	runtime__v1__linux_pod_sandbox_stats__init(&pp->linux);
	runtime__v1__cpu_usage__init(&pp->cpu);
	runtime__v1__memory_usage__init(&pp->mem);
	runtime__v1__process_usage__init(&pp->proc);
	runtime__v1__network_usage__init(&pp->net);
	runtime__v1__network_interface_usage__init(&pp->iface);
	pp->attr.id = p->id;
	pp->attr.metadata = p->config->metadata;
	pp->n_labels = pp->attr.n_labels = p->config->n_labels;
	pp->labels = pp->attr.labels =
	    kv_copy(&runtime__v1__pod_sandbox_attributes__labels_entry__descriptor,
	            (void *const *)p->config->labels, p->config->n_labels);
	pp->n_annotations = pp->attr.n_annotations = p->config->n_annotations;
	pp->annotations = pp->attr.annotations =
	    kv_copy(&runtime__v1__pod_sandbox_attributes__annotations_entry__descriptor,
	            (void *const *)p->config->annotations, p->config->n_annotations);
	pp->st.attributes = &pp->attr;
	pp->st.linux = &pp->linux;
	for (struct cri_ctr *k = c->ctrs; k; k = k->next)
		if (k->pod == p)
			n++;
	pp->ctrs = xcalloc(n + 1, sizeof(*pp->ctrs));
	pp->ctr_ptrs = xcalloc(n + 1, sizeof(*pp->ctr_ptrs));
	for (struct cri_ctr *k = c->ctrs; k; k = k->next) {
		const struct sample *s;
		if (k->pod != p || !(s = sample_of(g, k->id)) || !s->ok)
			continue;
		fill_ctr_stats(k, s, &pp->ctrs[pp->n_ctrs]);
		pp->ctr_ptrs[pp->n_ctrs] = &pp->ctrs[pp->n_ctrs].st;
		pp->n_ctrs++;
		cpu += s->cpu_ns;
		mem += s->mem;
		pids += s->pids;
	}
	pp->linux.n_containers = pp->n_ctrs;
	pp->linux.containers = pp->ctr_ptrs;
	pp->cpu.timestamp = now;
	pp->cpu.usage_core_nano_seconds = u64(&pp->v[0], cpu);
	pp->mem.timestamp = now;
	pp->mem.working_set_bytes = u64(&pp->v[1], mem);
	pp->mem.usage_bytes = u64(&pp->v[2], mem);
	pp->proc.timestamp = now;
	pp->proc.process_count = u64(&pp->v[3], pids);
	pp->linux.cpu = &pp->cpu;
	pp->linux.memory = &pp->mem;
	pp->linux.process = &pp->proc;
	if (p->cni && p->cni->netns) {
		struct net_read nr = {0};
		int fd = open(p->cni->netns, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)netns_run(fd, read_net_dev, &nr);
			close(fd);
		}
		if (nr.ok) {
			pp->iface.name = (char *)"eth0";
			pp->iface.rx_bytes = u64(&pp->v[4], nr.rx);
			pp->iface.rx_errors = u64(&pp->v[5], nr.rx_err);
			pp->iface.tx_bytes = u64(&pp->v[6], nr.tx);
			pp->iface.tx_errors = u64(&pp->v[7], nr.tx_err);
			pp->net.timestamp = now;
			pp->net.default_interface = &pp->iface;
			pp->linux.network = &pp->net;
		}
	}
}

static bool ctr_wanted(const struct cri_ctr *k, const Runtime__V1__ContainerStatsFilter *f)
{
	if (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING || !k->in_shim)
		return false;
	if (!f)
		return true;
	if (*f->id && strncmp(k->id, f->id, strlen(f->id)) != 0)
		return false;
	if (*f->pod_sandbox_id &&
	    strncmp(k->pod->id, f->pod_sandbox_id, strlen(f->pod_sandbox_id)) != 0)
		return false;
	return labels_match((void *const *)k->config->labels, k->config->n_labels,
	                    (void *const *)f->label_selector, f->n_label_selector);
}

static bool pod_wanted(const struct cri_pod *p, const Runtime__V1__PodSandboxStatsFilter *f)
{
	if (p->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY)
		return false;
	if (!f)
		return true;
	if (*f->id && strncmp(p->id, f->id, strlen(f->id)) != 0)
		return false;
	return labels_match((void *const *)p->config->labels, p->config->n_labels,
	                    (void *const *)f->label_selector, f->n_label_selector);
}

static void gather_free(struct gather *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->s[i].ctr_id);
	free(g->s);
	free(g->pod_id);
	if (g->kind == LIST_CTR && g->filter)
		runtime__v1__list_container_stats_request__free_unpacked(g->filter, NULL);
	if (g->kind == LIST_POD && g->filter)
		runtime__v1__list_pod_sandbox_stats_request__free_unpacked(g->filter, NULL);
	free(g);
}

static void gather_answer(struct gather *g)
{
	struct cri *c = g->c;

	if (g->kind == ONE_CTR) {
		Runtime__V1__ContainerStatsResponse resp =
		    RUNTIME__V1__CONTAINER_STATS_RESPONSE__INIT;
		struct stats_parts sp;
		struct cri_ctr *k = ctr_find(c, g->s[0].ctr_id);
		if (!k) {
			struct hull_error e = {.code = -ENOENT,
			                       .msg = (char *)"the container is gone"};
			grpc_call_reply(g->call, -ENOENT, &e, NULL);
		} else {
			fill_ctr_stats(k, &g->s[0], &sp);
			resp.stats = &sp.st;
			grpc_call_reply(g->call, 0, NULL, &resp.base);
			stats_parts_done(&sp);
		}
	} else if (g->kind == LIST_CTR) {
		Runtime__V1__ListContainerStatsResponse resp =
		    RUNTIME__V1__LIST_CONTAINER_STATS_RESPONSE__INIT;
		struct stats_parts *sp = xcalloc(g->n + 1, sizeof(*sp));
		Runtime__V1__ContainerStats **ptrs = xcalloc(g->n + 1, sizeof(*ptrs));
		size_t n = 0;
		for (size_t i = 0; i < g->n; i++) {
			struct cri_ctr *k = ctr_find(c, g->s[i].ctr_id);
			if (!k || !g->s[i].ok)
				continue;
			fill_ctr_stats(k, &g->s[i], &sp[n]);
			ptrs[n] = &sp[n].st;
			n++;
		}
		resp.n_stats = n;
		resp.stats = ptrs;
		grpc_call_reply(g->call, 0, NULL, &resp.base);
		for (size_t i = 0; i < n; i++)
			stats_parts_done(&sp[i]);
		free(sp);
		free(ptrs);
	} else {
		Runtime__V1__PodSandboxStatsResponse one =
		    RUNTIME__V1__POD_SANDBOX_STATS_RESPONSE__INIT;
		Runtime__V1__ListPodSandboxStatsResponse list =
		    RUNTIME__V1__LIST_POD_SANDBOX_STATS_RESPONSE__INIT;
		size_t n_pods = 0, n = 0;
		for (struct cri_pod *p = c->pods; p; p = p->next)
			n_pods++;
		struct pod_parts *pp = xcalloc(n_pods + 1, sizeof(*pp));
		Runtime__V1__PodSandboxStats **ptrs = xcalloc(n_pods + 1, sizeof(*ptrs));
		for (struct cri_pod *p = c->pods; p; p = p->next) {
			if (g->kind == ONE_POD
			        ? strcmp(p->id, g->pod_id) != 0
			        : !pod_wanted(p,
			                      ((Runtime__V1__ListPodSandboxStatsRequest *)g->filter)
			                          ->filter))
				continue;
			fill_pod_stats(c, p, g, &pp[n]);
			ptrs[n] = &pp[n].st;
			n++;
		}
		if (g->kind == ONE_POD) {
			if (n == 0) {
				struct hull_error e = {.code = -ENOENT,
				                       .msg = (char *)"the pod is gone"};
				grpc_call_reply(g->call, -ENOENT, &e, NULL);
			} else {
				one.stats = ptrs[0];
				grpc_call_reply(g->call, 0, NULL, &one.base);
			}
		} else {
			list.n_stats = n;
			list.stats = ptrs;
			grpc_call_reply(g->call, 0, NULL, &list.base);
		}
		for (size_t i = 0; i < n; i++)
			pod_parts_done(&pp[i]);
		free(pp);
		free(ptrs);
	}
	gather_free(g);
}

struct sample_call {
	struct gather *g;
	size_t i;
};

static void on_stats(struct ttrpc_client *tc, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct sample_call *sc = userdata;
	struct gather *g = sc->g;
	struct sample *s = &g->s[sc->i];
	Hull__Task__StatsResponse *r;
	(void)tc;

	free(sc);
	if (code == TTRPC_OK && (r = hull__task__stats_response__unpack(NULL, len, payload))) {
		/* The runc shim on a cgroup v1 host answers in v1 metrics; hull's shim (the
		 * guest) and runc's on a v2 host in v2. */
		Hull__Events__V1Metrics *v1 =
		    r->stats && strstr(r->stats->type_url, "cgroups.v1.Metrics")
		        ? hull__events__v1_metrics__unpack(NULL, r->stats->value.len,
		                                           r->stats->value.data)
		        : NULL;
		Hull__Events__Metrics *m =
		    r->stats && !v1 ? hull__events__metrics__unpack(NULL, r->stats->value.len,
		                                                    r->stats->value.data)
		                    : NULL;
		if (v1) {
			uint64_t usage =
			    v1->memory && v1->memory->usage ? v1->memory->usage->usage : 0;
			uint64_t inactive = v1->memory ? v1->memory->total_inactive_file : 0;
			s->ok = true;
			s->ts = cri_now_ns();
			s->cpu_ns = v1->cpu && v1->cpu->usage ? v1->cpu->usage->total : 0;
			/* kubelet's working set: usage less the inactive file cache. */
			s->mem = usage > inactive ? usage - inactive : usage;
			s->mem_limit =
			    v1->memory && v1->memory->usage ? v1->memory->usage->limit : 0;
			s->pids = v1->pids ? v1->pids->current : 0;
			hull__events__v1_metrics__free_unpacked(v1, NULL);
		}
		if (m) {
			s->ok = true;
			s->ts = cri_now_ns();
			s->cpu_ns = m->cpu ? m->cpu->usage_usec * 1000 : 0;
			s->mem = m->memory ? m->memory->usage : 0;
			s->mem_limit = m->memory ? m->memory->usage_limit : 0;
			s->pids = m->pids ? m->pids->current : 0;
			hull__events__metrics__free_unpacked(m, NULL);
		}
		hull__task__stats_response__free_unpacked(r, NULL);
	} else if (code != TTRPC_OK) {
		log_debug("stats of '%s': %s", s->ctr_id, message);
	}
	if (--g->pending == 0)
		gather_answer(g);
}

/* Ask every sampled container's shim; answer when all have. */
static int gather_run(struct gather *g)
{
	g->pending = 1;
	for (size_t i = 0; i < g->n; i++) {
		struct cri_ctr *k = ctr_find(g->c, g->s[i].ctr_id);
		Hull__Task__StatsRequest sr = HULL__TASK__STATS_REQUEST__INIT;
		struct sample_call *sc = xcalloc(1, sizeof(*sc));
		sc->g = g;
		sc->i = i;
		sr.id = g->s[i].ctr_id;
		if (k && shim_call(k->pod, "Stats", &sr.base, SHIM_CALL_TIMEOUT_MS, on_stats, sc))
			g->pending++;
		else
			free(sc);
	}
	if (--g->pending == 0)
		gather_answer(g);
	return 1;
}

static void gather_add(struct gather *g, const struct cri_ctr *k)
{
	g->s = xrealloc(g->s, (g->n + 1) * sizeof(*g->s));
	memset(&g->s[g->n], 0, sizeof(g->s[g->n]));
	g->s[g->n].ctr_id = xstrdup(k->id);
	g->n++;
}

static struct gather *gather_new(struct cri *c, struct grpc_call *call, int kind)
{
	struct gather *g = xcalloc(1, sizeof(*g));
	g->c = c;
	g->call = call;
	g->kind = kind;
	return g;
}

int cri_container_stats(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                        ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ContainerStatsRequest *req =
	    runtime__v1__container_stats_request__unpack(NULL, len, msg);
	struct cri_ctr *k;
	struct gather *g;
	(void)ret;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_get(c, req->container_id, false, err);
	runtime__v1__container_stats_request__free_unpacked(req, NULL);
	if (!k)
		return (*err)->code;
	g = gather_new(c, call, ONE_CTR);
	gather_add(g, k);
	if (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING || !k->in_shim) {
		/* Not running: attributes and the writable layer, no usage. */
		g->pending = 0;
		gather_answer(g);
		return 1;
	}
	return gather_run(g);
}

int cri_list_container_stats(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                             ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ListContainerStatsRequest *req =
	    runtime__v1__list_container_stats_request__unpack(NULL, len, msg);
	struct gather *g;
	(void)ret;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	g = gather_new(c, call, LIST_CTR);
	g->filter = req;
	for (struct cri_ctr *k = c->ctrs; k; k = k->next)
		if (ctr_wanted(k, req->filter))
			gather_add(g, k);
	return gather_run(g);
}

static int pod_stats(struct cri *c, struct grpc_call *call, const char *pod_id, void *filter)
{
	struct gather *g = gather_new(c, call, pod_id ? ONE_POD : LIST_POD);
	const Runtime__V1__PodSandboxStatsFilter *f =
	    filter ? ((Runtime__V1__ListPodSandboxStatsRequest *)filter)->filter : NULL;
	g->pod_id = pod_id ? xstrdup(pod_id) : NULL;
	g->filter = filter;
	for (struct cri_ctr *k = c->ctrs; k; k = k->next)
		if ((pod_id ? strcmp(k->pod->id, pod_id) == 0 : pod_wanted(k->pod, f)) &&
		    ctr_wanted(k, NULL))
			gather_add(g, k);
	return gather_run(g);
}

int cri_pod_sandbox_stats(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                          ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__PodSandboxStatsRequest *req =
	    runtime__v1__pod_sandbox_stats_request__unpack(NULL, len, msg);
	struct cri_pod *p;
	int r;
	(void)ret;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	p = pod_find(c, req->pod_sandbox_id);
	if (!p)
		r = hull_error_set(err, -ENOENT, "pod sandbox '%.80s' not found",
		                   req->pod_sandbox_id);
	else if (p->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY)
		r = hull_error_set(err, grpc_error_code(TTRPC_FAILED_PRECONDITION),
		                   "pod sandbox '%s' is not ready", p->id);
	else
		r = pod_stats(c, call, p->id, NULL);
	runtime__v1__pod_sandbox_stats_request__free_unpacked(req, NULL);
	return r;
}

int cri_list_pod_sandbox_stats(void *userdata, struct grpc_call *call, const uint8_t *msg,
                               size_t len, ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ListPodSandboxStatsRequest *req =
	    runtime__v1__list_pod_sandbox_stats_request__unpack(NULL, len, msg);
	(void)ret;
	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	return pod_stats(c, call, NULL, req);
}
