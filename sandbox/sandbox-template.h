/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "vmm.h"

/*
 * Templates (docs/templates.md): a VM booted once to "agent ready, nothing mounted",
 * its RAM in a file and its device state saved beside it, restored by every sandbox
 * that matches instead of booting. This is the store: what a template must match (its
 * key), where it lives, the lock that makes one process build it, and the checks that
 * keep a damaged one from being used. sandbox.c builds and clones.
 *
 *   ROOT/.templates/<id>/           one template; <id> names its key
 *        meta                       the key, then the sizes and hash of what follows
 *        ram                        the guest's RAM (sparse, on tmpfs: the shared pages)
 *        state                      QEMU's device state (tens of KB)
 *        blank                      the disk an unused slot gets
 *        extents                    the parts of ram the template wrote
 *   ROOT/.templates/<id>.lock       flock: one builder at a time
 *   ROOT/.templates/<id>.failed     why its last build or restore failed (held 10 min)
 *   ROOT/.templates/.build-<id>-<pid>/  a build in progress, renamed to <id>/ when done
 */

#define TEMPLATE_DOMAIN_MAX 200
/* The disk slots of a template: sparse, larger than any image layer. A restored
 * virtio-blk device keeps the size its guest read at probe (the template's) while
 * showing the clone's file; erofs reads only inside its image, so a size larger than
 * the image serves every layer with no re-probe (measured: re-probing one disk costs a
 * clone ~100 ms under TCG). */
#define TEMPLATE_BLANK_SIZE (1ull << 40)
/* A failed build or restore is not tried again for this long (a guest that cannot be
 * templated would otherwise cost a second boot on every start). */
#define TEMPLATE_FAILED_HOLD_S 600

/* Everything a clone must share with its template. */
struct template_spec {
	const char *root;            /* the state root */
	const char *domain;          /* the trust domain (template_domain_valid) */
	const struct vmm_config *vm; /* resolved: qemu, kernel, initrd, machine, accel,
	                              * channel, cpus, memory, debug, vhost_net */
	unsigned n_disks;            /* disk slots, template_disk_slots() */
	unsigned n_nics;             /* tap NICs */
	bool net_user;
};

/* A template found sound, its files open (they cannot be swapped under a clone). */
struct template
{
	char *id, *dir;
	int ram_fd;   /* read-write: QEMU maps it privately (copy-on-write) */
	int state_fd; /* read-only, at offset 0 */
	char *blank;
	uint64_t(*keep)[2]; /* the RAM file's extents the template wrote: offset, length */
	size_t n_keep;
	uint64_t kept; /* their bytes */
};

/* A build in progress (the builder holds the lock). */
struct template_build {
	char *id, *key, *store;
	char *dir;    /* .build-<id>-<pid> */
	char *shared; /* its 9p export (empty: nothing is mounted in a template) */
	char *ram, *blank;
	int state_fd; /* written by vmm save */
	int lock_fd;
};

/* Names a domain can have: 1 to 200 of [A-Za-z0-9_.-], not starting with '.'. */
bool template_domain_valid(const char *s);
/* The slots a template offers for n disks: 0, or the next power of two (an image of 3
 * layers and one of 4 share a template) where that fits in max, else max (or n itself
 * when n is more than max: then nothing fits and the caller finds out). */
unsigned template_disk_slots(unsigned n, unsigned max);
/* The MAC slot i of a template has until the guest takes the sandbox's; the NAT NIC
 * of --net=user is slot TEMPLATE_NAT_SLOT. buf: 18 bytes. */
#define TEMPLATE_NAT_SLOT 0xff
void template_slot_mac(unsigned slot, char buf[18]);

/* The key's text ("name=value" lines) and the id it gives. Caller frees both. */
int template_key(const struct template_spec *s, char **ret_key, char **ret_id,
                 struct hull_error **err);
/* 1: a sound template (*ret); 0: none (a damaged one is removed and said so at info);
 * -EAGAIN: its last build or restore failed not long ago (*err says why). */
int template_open(const struct template_spec *s, struct template **ret, struct hull_error **err);
struct template *template_close(struct template *t);
/* Give back the zero pages clones faulted into the RAM file's holes (a private mapping
 * of a tmpfs file fills a hole when it is touched; the template's own pages stay).
 * Safe while clones run: a hole reads as zeros either way, and their copies are
 * their own. 0 or -errno. */
int template_reclaim(struct template *t);
/* A clone's -kernel: the boot header of kernel (a bzImage) written to path. QEMU's
 * loader parses it as it parses the kernel, and copies the kernel into its own memory
 * at every start, but a restored guest never boots again: the header alone keeps
 * ~3 MiB of kernel out of every clone. 1 written; 0 kernel is not a bzImage (the clone
 * takes it whole); <0 -errno. */
int template_boot_header(const char *kernel, const char *path);

/* The build lock: 1 with *ret_fd held, 0 while another process holds it. */
int template_lock(const char *root, const char *id, int *ret_fd, struct hull_error **err);
/* Start a build under the lock (taken: released by commit or abort): the build dir
 * with an empty export, the blank disk, and the RAM file sized for s->vm. */
int template_build_begin(const struct template_spec *s, int lock_fd, struct template_build **ret,
                         struct hull_error **err);
/* The state is written: check it, write meta, and move the build into place; frees b.
 * On failure b stays the caller's, to abort. */
int template_build_commit(struct template_build *b, struct hull_error **err);
/* Throw the build away; with a reason, remember it (<id>.failed). Frees b. */
void template_build_abort(struct template_build *b, const char *reason);
void template_build_free(struct template_build *b);
/* Forget id's recorded failure (hull template create tries again). */
void template_forget_failure(const char *root, const char *id);
/* Remember that restoring from id failed, and remove the template. */
void template_restore_failed(const char *root, const char *id, const char *reason);

/* For `hull template ls|rm|prune`. */
struct template_info {
	char *id;
	char *key;          /* the key text */
	bool stale;         /* a file in its key changed or is gone */
	uint64_t ram_bytes; /* resident in its RAM file */
	uint64_t state_bytes;
	time_t created;
};
/* The store's templates, sorted by id. */
int template_list(const char *root, struct template_info **ret, size_t *ret_n,
                  struct hull_error **err);
void template_info_free(struct template_info *t, size_t n);
/* A key's value ("domain", "memory"...), or NULL. Caller frees. */
char *template_key_get(const char *key, const char *name);
/* Remove a template (its clones keep running: they hold their pages). -ENOENT if none. */
int template_remove(const char *root, const char *id, struct hull_error **err);
/* Remove stale templates, builds nobody runs, failure records (so the next start tries
 * again) and unused locks. Returns how many templates went. */
int template_prune(const char *root);
/* ROOT/.templates. Caller frees. */
char *template_store_path(const char *root);
