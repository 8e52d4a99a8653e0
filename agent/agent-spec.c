/* SPDX-License-Identifier: MIT */
/* CreateContainerRequest -> container_spec: every field the host sent checked before
 * the container engine sees it; the runtime spec itself parsed and validated here, in
 * the guest (oci_spec_parse). */
#include "agent.h"

#include <ctype.h>
#include <string.h>

#include "container/oci-spec.h"
#include "util.h"

#define MAX_MOUNTS 64
#define MAX_LAYERS 64
#define MAX_TAG_LEN 31 /* virtio-9p mount tags */

static bool valid_tag(const char *s)
{
	return id_is_valid(s) && strlen(s) <= MAX_TAG_LEN;
}

static bool valid_abs_path(const char *s)
{
	return s[0] == '/' && strlen(s) < 4096;
}

static int copy_shares(const Hull__Agent__V1__CreateContainerRequest *req,
                       struct container_spec *spec, struct hull_error **err)
{
	if (req->n_mounts > MAX_MOUNTS)
		return hull_error_set(err, -E2BIG, "mounts: more than %d", MAX_MOUNTS);
	for (size_t i = 0; i < req->n_mounts; i++) {
		const Hull__Agent__V1__Mount *m = req->mounts[i];
		if (!m->storage || !valid_tag(m->storage->source))
			return hull_error_set(err, -EINVAL,
			                      "mounts[%zu].storage: not a valid 9p tag", i);
		if (m->subpath[0] && !subpath_is_valid(m->subpath))
			return hull_error_set(
			    err, -EINVAL,
			    "mounts[%zu].subpath: '%.64s' is not a relative path of "
			    "plain names",
			    i, m->subpath);
		if (!valid_abs_path(m->destination) || strcmp(m->destination, "/") == 0)
			return hull_error_set(
			    err, -EINVAL,
			    "mounts[%zu].destination: '%.256s' is not an absolute path below /", i,
			    m->destination);
	}
	spec->n_mounts = req->n_mounts;
	spec->mounts = xcalloc(spec->n_mounts, sizeof(*spec->mounts));
	for (size_t i = 0; i < spec->n_mounts; i++) {
		spec->mounts[i].tag = xstrdup(req->mounts[i]->storage->source);
		spec->mounts[i].destination = xstrdup(req->mounts[i]->destination);
		spec->mounts[i].subpath =
		    req->mounts[i]->subpath[0] ? xstrdup(req->mounts[i]->subpath) : NULL;
		spec->mounts[i].readonly =
		    req->mounts[i]->readonly || req->mounts[i]->storage->readonly;
	}
	return 0;
}

/* A full runtime spec: parsed and validated here, in the guest. */
static int spec_from_oci(const Hull__Agent__V1__CreateContainerRequest *req,
                         struct container_spec *spec, struct hull_error **err)
{
	struct oci_spec *o = xcalloc(1, sizeof(*o));
	int r;

	*spec = (struct container_spec){0};
	r = oci_spec_parse((const char *)req->oci_config.data, req->oci_config.len, o, err);
	if (r < 0) {
		free(o);
		return r;
	}
	spec->oci = o;
	spec->id = xstrdup(req->id);
	spec->root_tag = xstrdup(req->root->source[0] ? req->root->source : "layers");
	if (req->root->n_layers) {
		spec->root_layers = xcalloc(req->root->n_layers + 1, sizeof(char *));
		for (size_t i = 0; i < req->root->n_layers; i++)
			spec->root_layers[i] = xstrdup(req->root->layers[i]);
	}
	spec->root_readonly = req->root->readonly;
	spec->root_overlay = req->root->overlay || req->root->n_layers > 0;
	spec->root_subpath = req->root->subpath[0] ? xstrdup(req->root->subpath) : NULL;
	spec->args = TAKE_PTR(o->args);
	spec->env = TAKE_PTR(o->env);
	spec->cwd = TAKE_PTR(o->cwd);
	spec->hostname = TAKE_PTR(o->hostname);
	spec->uid = o->uid;
	spec->gid = o->gid;
	spec->n_groups = o->n_additional_gids;
	spec->groups = xcalloc(spec->n_groups, sizeof(gid_t));
	for (size_t i = 0; i < spec->n_groups; i++)
		spec->groups[i] = o->additional_gids[i];
	spec->terminal = o->terminal;
	spec->rows = (uint16_t)o->rows;
	spec->cols = (uint16_t)o->cols;
	r = copy_shares(req, spec, err);
	if (r < 0)
		container_spec_done(spec);
	return r;
}

int agent_spec_from_request(const Hull__Agent__V1__CreateContainerRequest *req,
                            struct container_spec *spec, struct hull_error **err)
{
	if (!id_is_valid(req->id))
		return hull_error_set(err, -EINVAL, "id: '%.64s' is not a valid container id",
		                      req->id);
	if (!req->root)
		return hull_error_set(err, -EINVAL, "root: missing");
	if (strcmp(req->root->fstype, "erofs") == 0) {
		if (req->root->n_layers == 0 || req->root->n_layers > MAX_LAYERS)
			return hull_error_set(err, -EINVAL, "root.layers: 1 to %d wanted, got %zu",
			                      MAX_LAYERS, req->root->n_layers);
		for (size_t i = 0; i < req->root->n_layers; i++)
			if (!valid_tag(req->root->layers[i]) || strlen(req->root->layers[i]) > 20)
				return hull_error_set(err, -EINVAL,
				                      "root.layers[%zu]: not a disk serial", i);
	} else if (!valid_tag(req->root->source)) {
		return hull_error_set(err, -EINVAL, "root.source: missing or not a valid 9p tag");
	} else if (strcmp(req->root->fstype, "9p") != 0) {
		return hull_error_set(err, -EINVAL,
		                      "root.fstype: '%.32s' unsupported (want 9p or erofs)",
		                      req->root->fstype);
	}
	if (req->root->subpath[0] && !subpath_is_valid(req->root->subpath))
		return hull_error_set(err, -EINVAL,
		                      "root.subpath: '%.64s' is not a relative path of plain names",
		                      req->root->subpath);
	if (req->oci_config.len == 0)
		return hull_error_set(err, -EINVAL, "oci_config: missing");
	return spec_from_oci(req, spec, err);
}

#define SYNC_ENTROPY_MIN 32
#define SYNC_ENTROPY_MAX 512
#define SYNC_MAX_NICS 16
/* 2001-09-09: a host clock before that is broken, not a time to take. */
#define SYNC_REALTIME_MIN_NS (1000000000LL * 1000000000LL)

static bool mac_valid(const char *m)
{
	if (strlen(m) != 17)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? m[i] != ':' : !strchr("0123456789abcdefABCDEF", m[i]))
			return false;
	return true;
}

static bool hostname_valid(const char *h)
{
	size_t n = strlen(h);
	if (n > 64)
		return false;
	for (const char *p = h; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '_'))
			return false;
	return true;
}

int agent_sync_check(const Hull__Agent__V1__SyncRequest *req, struct hull_error **err)
{
	if (req->realtime_ns < SYNC_REALTIME_MIN_NS)
		return hull_error_set(err, -EINVAL, "realtime_ns: %lld is not a time to take",
		                      (long long)req->realtime_ns);
	if (req->entropy.len < SYNC_ENTROPY_MIN || req->entropy.len > SYNC_ENTROPY_MAX)
		return hull_error_set(err, -EINVAL, "entropy: %zu bytes, want %d to %d",
		                      req->entropy.len, SYNC_ENTROPY_MIN, SYNC_ENTROPY_MAX);
	if (!hostname_valid(req->hostname))
		return hull_error_set(err, -EINVAL, "hostname: '%.64s' is not a host name",
		                      req->hostname);
	if (req->n_nics > SYNC_MAX_NICS)
		return hull_error_set(err, -E2BIG, "nics: more than %d", SYNC_MAX_NICS);
	for (size_t i = 0; i < req->n_nics; i++)
		if (!req->nics[i] || !mac_valid(req->nics[i]->from_mac) ||
		    !mac_valid(req->nics[i]->to_mac))
			return hull_error_set(err, -EINVAL, "nics[%zu]: not a pair of MACs", i);
	return 0;
}
