/* SPDX-License-Identifier: MIT */
/* The job hull run describes, as the pod core takes it: the spec (the bundle's, or one
 * generated with docker's defaults), its root (a directory or image layers), every host
 * path it sees as a mount, the /etc files hull adds, and the network. The same for the
 * foreground run and the detached one. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "cli-run.h"
#include "cli-spec.h"
#include "cli.h"
#include "util.h"

int run_check_binary(const char *name)
{
	_cleanup_free_ char *found = NULL;
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? 0 : -errno;
	found = find_program(name);
	return found ? 0 : -ENOENT;
}

/* A sandbox name when none is given: 12 hex digits. */
char *run_random_name(void)
{
	uint8_t rnd[6];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		abort();
	return xasprintf("%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
	                 rnd[5]);
}

/* A file of the container's /etc (path): text, or a copy of the host's own file when
 * text is NULL (the container may write its copy, never the host's). A bundle keeps its
 * own. */
int run_add_etc_file(struct run_opts *o, const char *path, const char *text,
                     struct hull_error **err)
{
	char tmpl[] = "/tmp/hull-etc.XXXXXX";
	_cleanup_free_ char *copy = NULL;
	int fd;

	if (o->bundle_dir)
		return 0;
	if (!text) {
		_cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n;
		copy = xmalloc(64 << 10);
		n = in < 0 ? -errno : read_all(in, copy, (64 << 10) - 1);
		if (n < 0)
			return hull_error_set_errno(err, (int)n, "%s", path);
		copy[n] = '\0';
		text = copy;
	}
	fd = mkstemp(tmpl);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0) {
		int e = -errno;
		if (fd >= 0) {
			close(fd);
			(void)unlink(tmpl);
		}
		return hull_error_set_errno(err, e, "%s", path);
	}
	close(fd);
	(void)chmod(tmpl, 0644);
	strv_push(&o->temp_files, xstrdup(tmpl));
	o->files = xrealloc(o->files, (o->n_files + 1) * sizeof(*o->files));
	o->files[o->n_files++] = (struct volume){.host = xstrdup(tmpl), .container = xstrdup(path)};
	return 0;
}

/* /etc/hosts as docker writes it: localhost, and the sandbox's name at its addresses. */
char *run_hosts_text(const char *name, char *const *cidrs)
{
	char *text = xstrdup("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	for (char *const *c = cidrs; c && *c; c++) {
		char *n = xasprintf("%s%.*s\t%s\n", text, (int)strcspn(*c, "/"), *c, name);
		free(text);
		text = n;
	}
	return text;
}

void run_tty_size(uint32_t *rows, uint32_t *cols)
{
	struct winsize ws = {0};
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
}

/* The config.json of a --rootfs or IMAGE job: docker's defaults, the options, and a
 * bind mount for each host path (volumes, the /etc files hull adds). */
static char *generated_spec(const struct run_opts *o, const char *default_hostname, size_t *len)
{
	size_t n = o->n_vols + o->n_files;
	_cleanup_free_ struct cli_spec_volume *vols = xcalloc(n + 1, sizeof(*vols));
	for (size_t i = 0; i < o->n_vols; i++)
		vols[i] = (struct cli_spec_volume){.source = o->vols[i].host,
		                                   .destination = o->vols[i].container,
		                                   .readonly = o->vols[i].readonly};
	for (size_t i = 0; i < o->n_files; i++)
		vols[o->n_vols + i] = (struct cli_spec_volume){
		    .source = o->files[i].host, .destination = o->files[i].container};
	struct cli_spec_input in = {
	    .args = o->cmd,
	    .env = o->env,
	    .cwd = o->workdir ? o->workdir : "/",
	    .hostname = o->hostname ? o->hostname : default_hostname,
	    .uid = o->uid,
	    .gid = o->gid,
	    .terminal = o->tty,
	    .privileged = o->privileged,
	    .volumes = vols,
	    .n_volumes = n,
	};
	if (o->tty)
		run_tty_size(&in.rows, &in.cols);
	return cli_build_oci_spec(&in, len);
}

int run_job_prepare(const struct run_opts *o, const char *name, struct run_job *j,
                    struct hull_error **err)
{
	size_t n = o->n_vols + o->n_files;

	(void)err;
	*j = (struct run_job){0};
	j->mounts = xcalloc(n + 1, sizeof(*j->mounts));
	for (size_t i = 0; i < o->n_vols; i++)
		j->mounts[i] = (struct pod_mount){.source = o->vols[i].host,
		                                  .destination = o->vols[i].container,
		                                  .readonly = o->vols[i].readonly,
		                                  .copy = o->vols[i].copy};
	for (size_t i = 0; i < o->n_files; i++)
		j->mounts[o->n_vols + i] = (struct pod_mount){.source = o->files[i].host,
		                                              .destination = o->files[i].container,
		                                              .readonly = o->files[i].readonly};
	j->ctr.id = CONTAINER_ID;
	j->ctr.mounts = j->mounts;
	j->ctr.n_mounts = n;
	j->ctr.terminal = o->tty;
	if (o->bundle_dir) {
		j->ctr.config = o->bundle.config;
		j->ctr.config_len = o->bundle.config_len;
		/* A bundle's rootfs is written directly, as under runc, unless root.readonly:
		 * then an overlay takes the mount targets the spec needs and the guest makes
		 * the root read-only after mounting, so the bundle is never written. */
		j->ctr.rootfs = o->bundle.rootfs;
		j->ctr.root_overlay = o->bundle.root_readonly;
	} else {
		j->config = generated_spec(o, name, &j->ctr.config_len);
		j->ctr.config = j->config;
		if (o->layers) {
			size_t nl = strv_length(o->layers);
			/* The image's layers as read-only disks hull-l0, hull-l1... */
			j->disks = xcalloc(nl + 1, sizeof(*j->disks));
			for (size_t i = 0; i < nl; i++) {
				strv_push(&j->serials, xasprintf("hull-l%zu", i));
				j->disks[i] = (struct vmm_disk){.path = o->layers[i],
				                                .serial = j->serials[i]};
			}
			j->ctr.layers = j->serials;
			j->pod.disks = j->disks;
			j->pod.n_disks = nl;
		} else {
			/* Copy-on-write over the read-only directory unless --rootfs-rw. */
			j->ctr.rootfs = o->rootfs;
			j->ctr.root_overlay = !o->rootfs_rw;
		}
	}
	j->pod.id = name;
	j->pod.vm = &o->vm;
	j->pod.net_user = o->net_user;
	j->pod.hostfwd = o->hostfwd;
	j->pod.netns = o->netns;
	j->pod.debug = o->debug;
	return 0;
}

void run_job_done(struct run_job *j)
{
	free(j->config);
	free(j->mounts);
	free(j->disks);
	strv_free(j->serials);
	*j = (struct run_job){0};
}
