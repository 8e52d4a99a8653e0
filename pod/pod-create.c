/* SPDX-License-Identifier: MIT */
/* The one CreateContainer builder: every front end's container reaches the guest the
 * same way. Host paths (the rootfs, volumes, single files) are bound below the
 * sandbox's shared directory, STATE/shared/<id>/{rootfs,m0,m1,...}, which the guest
 * sees through its one 9p share; image layers are read-only disks given at boot. */
#include <string.h>
#include <sys/stat.h>

#include "agent.pb-c.h"
#include "pod-internal.h"
#include "pod-mount.h"
#include "util.h"

#define MAX_MOUNTS 64

void pod_ctr_undo_host(struct pod_ctr *c)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (!c->shared)
		return;
	(void)sandbox_unmount_below(c->shared);
	/* What is left are the empty dirs and files the binds were made on. */
	d = opendir(c->shared);
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *t = NULL;
		if (de->d_name[0] == '.')
			continue;
		t = xasprintf("%s/%s", c->shared, de->d_name);
		if (unlink(t) < 0)
			(void)rmdir(t);
	}
	(void)rmdir(c->shared);
	free(c->shared);
	c->shared = NULL;
}

static void storage_9p(Hull__Agent__V1__Storage *s)
{
	hull__agent__v1__storage__init(s);
	s->source = (char *)SANDBOX_SHARED_TAG;
	s->fstype = (char *)"9p";
}

int pod_ctr_build(struct pod_ctr *c, const struct pod_ctr_config *cfg, uint8_t **ret,
                  size_t *ret_len, struct hull_error **err)
{
	Hull__Agent__V1__CreateContainerRequest req =
	    HULL__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	Hull__Agent__V1__Storage root;
	_cleanup_free_ Hull__Agent__V1__Mount *mounts = NULL;
	_cleanup_free_ Hull__Agent__V1__Mount **mptrs = NULL;
	_cleanup_free_ Hull__Agent__V1__Storage *stores = NULL;
	_cleanup_strv_free_ char **paths = NULL;
	int r;

	if (cfg->n_mounts > MAX_MOUNTS)
		return hull_error_set(err, -E2BIG, "'%s': more than %d mounts", c->id, MAX_MOUNTS);
	if (!cfg->rootfs == !cfg->layers)
		return hull_error_set(err, -EINVAL, "'%s': a root directory or layers", c->id);
	c->shared = xasprintf("%s/%s", c->pod->sb->shared_dir, c->id);
	/* Traversable, not listable: the guest's user-namespaced containers (their root a
	 * high uid) reach their root and mounts through it. The state dir above it keeps
	 * the host's other users out. */
	if (mkdir(c->shared, 0711) < 0 || chmod(c->shared, 0711) < 0) {
		r = hull_error_set_errno(err, -errno, "mkdir '%s'", c->shared);
		free(c->shared);
		c->shared = NULL;
		return r;
	}
	storage_9p(&root);
	if (cfg->layers) {
		/* The image's layers, stacked in the guest. */
		root.fstype = (char *)"erofs";
		root.source = (char *)"";
		root.n_layers = strv_length(cfg->layers);
		root.layers = (char **)cfg->layers;
	} else {
		_cleanup_free_ char *dst = xasprintf("%s/rootfs", c->shared);
		/* An overlaid root is only read: bound read-only, the host kernel keeps the
		 * guest from ever writing it. */
		r = pod_bind(cfg->rootfs, dst, cfg->root_overlay, err);
		if (r < 0)
			goto fail;
		strv_push(&paths, xasprintf("%s/rootfs", c->id));
		root.subpath = paths[0];
		root.overlay = cfg->root_overlay;
	}
	mounts = xcalloc(cfg->n_mounts + 1, sizeof(*mounts));
	mptrs = xcalloc(cfg->n_mounts + 1, sizeof(*mptrs));
	stores = xcalloc(cfg->n_mounts + 1, sizeof(*stores));
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const struct pod_mount *m = &cfg->mounts[i];
		_cleanup_free_ char *dst = xasprintf("%s/m%zu", c->shared, i);
		r = m->copy ? pod_copy_file(m->source, dst, err)
		            : pod_bind(m->source, dst, m->readonly, err);
		if (r < 0) {
			hull_error_prefix(err, "mount at '%s'", m->destination);
			goto fail;
		}
		strv_push(&paths, xasprintf("%s/m%zu", c->id, i));
		storage_9p(&stores[i]);
		hull__agent__v1__mount__init(&mounts[i]);
		mounts[i].storage = &stores[i];
		mounts[i].destination = (char *)m->destination;
		/* The guest sees the bind as one 9p tree, where a read-only bind would
		 * cover the mounts inside it too: with mounts inside, the host's top-only
		 * read-only mount is what refuses writes (runc's "ro"). */
		mounts[i].readonly = m->readonly && !pod_has_submounts(m->source);
		mounts[i].subpath = paths[strv_length(paths) - 1];
		mptrs[i] = &mounts[i];
	}
	req.id = c->id;
	req.root = &root;
	req.mounts = mptrs;
	req.n_mounts = cfg->n_mounts;
	req.oci_config.data = (uint8_t *)cfg->config;
	req.oci_config.len = cfg->config_len;
	*ret_len = protobuf_c_message_get_packed_size(&req.base);
	*ret = xmalloc(*ret_len + 1);
	protobuf_c_message_pack(&req.base, *ret);
	return 0;
fail:
	pod_ctr_undo_host(c);
	return hull_error_prefix(err, "create '%s'", c->id);
}
