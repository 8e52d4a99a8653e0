/* SPDX-License-Identifier: MIT */
/* hull template create|ls|rm|prune: the template store (docs/templates.md). create
 * takes the VM's settings as hull run does, named after the one settings table. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "log.h"
#include "util.h"

#define CREATE_STOP_MS 2000

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: hull template create [OPTIONS]   build the template these options use\n"
	        "       hull template ls                 list the templates\n"
	        "       hull template rm ID... | --all   remove templates (clones keep running)\n"
	        "       hull template prune              remove stale templates and leftovers\n"
	        "\n"
	        "create options: the VM settings of hull run (--cpus, --memory, --kernel,\n"
	        "--initrd, --qemu, --accel, --machine, --channel, --template-domain), and the\n"
	        "device shape: --disks N (image layers), --nics N (CNI interfaces),\n"
	        "--net none|user. Prints the template's id.\n");
}

/* ---- create ----------------------------------------------------------------------- */

struct create_state {
	bool done;
	int r;
};

static void on_ready(struct sandbox *sb, int r, const struct hull_error *err, void *userdata)
{
	struct create_state *s = userdata;
	(void)sb;
	s->done = true;
	s->r = r;
	if (r < 0)
		fprintf(stderr, "hull template create: %s\n", err->msg);
}

static void on_lost(struct sandbox *sb, const struct hull_error *err, void *userdata)
{
	(void)sb, (void)err, (void)userdata;
}

static const struct sandbox_ops create_ops = {.ready = on_ready, .lost = on_lost};

enum { OPT_DISKS = 1000, OPT_NICS, OPT_NET, OPT_LOG_LEVEL, OPT_SETTING = 2000 };

static int parse_count(const char *flag, const char *v, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || n > max) {
		fprintf(stderr, "hull template create: %s '%s': want 0 to %u\n", flag, v, max);
		return -EINVAL;
	}
	*ret = (unsigned)n;
	return 0;
}

static int create(int argc, char **argv)
{
	size_t n_settings;
	const struct vmm_setting *settings = vmm_settings_list(&n_settings);
	struct option *opts = xcalloc(n_settings + 6, sizeof(*opts));
	_cleanup_strv_free_ char **names = NULL;
	struct vmm_settings vm;
	struct sandbox_config cfg = {0};
	struct create_state st = {0};
	struct event_loop *loop = NULL;
	struct sandbox *sb = NULL;
	struct hull_error *err = NULL;
	unsigned disks = 0, nics = 0;
	int c, r = 0, log_level = -1;

	vmm_settings_init(&vm);
	/* Every VM setting is a flag: boot_timeout is --boot-timeout. */
	for (size_t i = 0; i < n_settings; i++) {
		char *n = xstrdup(settings[i].key);
		for (char *p = n; *p; p++)
			if (*p == '_')
				*p = '-';
		strv_push(&names, n);
		opts[i] = (struct option){n, required_argument, NULL, OPT_SETTING + (int)i};
	}
	opts[n_settings] = (struct option){"disks", required_argument, NULL, OPT_DISKS};
	opts[n_settings + 1] = (struct option){"nics", required_argument, NULL, OPT_NICS};
	opts[n_settings + 2] = (struct option){"net", required_argument, NULL, OPT_NET};
	opts[n_settings + 3] = (struct option){"log-level", required_argument, NULL, OPT_LOG_LEVEL};
	opts[n_settings + 4] = (struct option){"help", no_argument, NULL, 'h'};
	optind = 1;
	argv[0] = (char *)"hull template create"; /* what getopt's messages name */
	while (r == 0 && (c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			goto out;
		} else if (c == 'm' || c >= OPT_SETTING) {
			const char *key = c == 'm' ? "memory" : settings[c - OPT_SETTING].key;
			r = vmm_settings_set(&vm, key, optarg, &err);
			if (r < 0)
				fprintf(stderr, "hull template create: --%s '%s': %s\n",
				        c == 'm' ? "memory" : names[c - OPT_SETTING], optarg,
				        err->msg);
		} else if (c == OPT_DISKS) {
			r = parse_count("--disks", optarg, 20, &disks);
		} else if (c == OPT_NICS) {
			r = parse_count("--nics", optarg, SANDBOX_NET_MAX_NICS, &nics);
		} else if (c == OPT_NET) {
			if (strcmp(optarg, "user") == 0 || strcmp(optarg, "none") == 0) {
				cfg.net_user = strcmp(optarg, "user") == 0;
			} else {
				fprintf(stderr,
				        "hull template create: --net '%s': want none or user\n",
				        optarg);
				r = -EINVAL;
			}
		} else if (c == OPT_LOG_LEVEL) {
			log_level = log_level_from_string(optarg);
			if (log_level < 0) {
				fprintf(stderr, "hull template create: --log-level '%s'\n", optarg);
				r = -EINVAL;
			}
		} else {
			r = -EINVAL;
		}
	}
	if (r == 0 && optind < argc) {
		fprintf(stderr, "hull template create: unexpected '%s'\n", argv[optind]);
		r = -EINVAL;
	}
	if (r < 0) {
		fputs("Try 'hull template --help'.\n", stderr);
		goto out;
	}
	if (log_level >= 0)
		log_set_level(log_level);
	cfg.vm = &vm;
	cfg.n_disks = disks;
	cfg.template_only = true;
	cfg.template_nics = nics;
	cfg.debug = log_level >= LOG_LEVEL_DEBUG;
	loop = event_loop_new();
	r = sandbox_start(loop, &cfg, &create_ops, &st, &sb, &err);
	if (r < 0) {
		fprintf(stderr, "hull template create: %s\n", err->msg);
		goto out;
	}
	while (!st.done && (r = event_loop_once(loop, -1)) >= 0)
		;
	if (st.done && st.r == 0)
		printf("%s\n", sb->template_id);
	r = st.done ? st.r : r;
	sb = sandbox_stop(sb, CREATE_STOP_MS);
out:
	hull_error_free(err);
	event_loop_free(loop);
	vmm_settings_done(&vm);
	free(opts);
	return r < 0 ? EXIT_HULL_ERROR : 0;
}

/* ---- ls, rm, prune ------------------------------------------------------------------ */

static void human(uint64_t n, char *buf, size_t len)
{
	if (n >= (10ull << 20))
		snprintf(buf, len, "%lluM", (unsigned long long)(n >> 20));
	else if (n >= (10ull << 10))
		snprintf(buf, len, "%lluK", (unsigned long long)(n >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)n);
}

static void age(time_t t, char *buf, size_t len)
{
	long long s = (long long)(time(NULL) - t);
	if (t == 0)
		snprintf(buf, len, "?");
	else if (s < 120)
		snprintf(buf, len, "%llds", s);
	else if (s < 7200)
		snprintf(buf, len, "%lldm", s / 60);
	else
		snprintf(buf, len, "%lldh", s / 3600);
}

static int list(void)
{
	_cleanup_free_ char *root = sandbox_default_state_root();
	struct template_info *v = NULL;
	struct hull_error *err = NULL;
	size_t n = 0;

	if (template_list(root, &v, &n, &err) < 0) {
		fprintf(stderr, "hull template ls: %s\n", err->msg);
		hull_error_free(err);
		return EXIT_HULL_ERROR;
	}
	printf("%-16s  %-20s %-4s %-6s %-5s %-4s %-4s %-7s %-6s %-5s %s\n", "ID", "DOMAIN", "CPUS",
	       "MEMORY", "DISKS", "NICS", "NET", "RAM", "STATE", "AGE", "STATUS");
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *domain = template_key_get(v[i].key, "domain");
		_cleanup_free_ char *cpus = template_key_get(v[i].key, "cpus");
		_cleanup_free_ char *mem = template_key_get(v[i].key, "memory_mib");
		_cleanup_free_ char *disks = template_key_get(v[i].key, "disks");
		_cleanup_free_ char *nics = template_key_get(v[i].key, "nics");
		_cleanup_free_ char *net = template_key_get(v[i].key, "net_user");
		char ram[32], state[32], a[32], m[32];
		human(v[i].ram_bytes, ram, sizeof(ram));
		human(v[i].state_bytes, state, sizeof(state));
		age(v[i].created, a, sizeof(a));
		snprintf(m, sizeof(m), "%sM", mem ? mem : "?");
		printf("%-16s  %-20s %-4s %-6s %-5s %-4s %-4s %-7s %-6s %-5s %s\n", v[i].id,
		       domain ? domain : "?", cpus ? cpus : "?", m, disks ? disks : "?",
		       nics ? nics : "?", net && strcmp(net, "1") == 0 ? "user" : "none", ram,
		       state, a, v[i].stale ? "stale (prune removes it)" : "ok");
	}
	template_info_free(v, n);
	return 0;
}

static int rm(int argc, char **argv)
{
	_cleanup_free_ char *root = sandbox_default_state_root();
	int status = 0;

	if (argc < 2) {
		fputs("usage: hull template rm ID... | --all\n", stderr);
		return EXIT_HULL_ERROR;
	}
	if (strcmp(argv[1], "--all") == 0) {
		struct template_info *v = NULL;
		size_t n = 0;
		if (template_list(root, &v, &n, NULL) == 0)
			for (size_t i = 0; i < n; i++)
				(void)template_remove(root, v[i].id, NULL);
		template_info_free(v, n);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		struct hull_error *err = NULL;
		if (template_remove(root, argv[i], &err) < 0) {
			fprintf(stderr, "hull template rm: %s\n", err->msg);
			hull_error_free(err);
			status = EXIT_HULL_ERROR;
		}
	}
	return status;
}

int cli_template(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_HULL_ERROR : 0;
	}
	if (strcmp(argv[1], "create") == 0)
		return create(argc - 1, argv + 1);
	if (strcmp(argv[1], "ls") == 0)
		return list();
	if (strcmp(argv[1], "rm") == 0)
		return rm(argc - 1, argv + 1);
	if (strcmp(argv[1], "prune") == 0) {
		_cleanup_free_ char *root = sandbox_default_state_root();
		int n = template_prune(root);
		printf("%d template%s removed\n", n, n == 1 ? "" : "s");
		return 0;
	}
	fprintf(stderr, "hull template: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_HULL_ERROR;
}
