/* SPDX-License-Identifier: MIT */
/* hull load, images, rmi, image inspect, image prune; and how `hull run IMAGE` finds
 * an image: by name in the store, or the embedded busybox image (docs/images.md). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli.h"
#include "image.h"
#include "util.h"

#define EMBEDDED_NAME "docker.io/library/busybox:latest"

/* The busybox image `make` builds: next to the binary (build/images/) or installed
 * (../lib/hull/images/). Caller frees; NULL when there is none. */
static char *embedded_archive(void)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	for (const char *rel = "images/busybox.tar\0../lib/hull/images/busybox.tar\0"; *rel;
	     rel += strlen(rel) + 1) {
		char *p = xasprintf("%s/%s", exe, rel);
		if (access(p, R_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

int cli_image_resolve(const char *arg, struct image_store **ret_store, char **ret_name,
                      char **ret_digest, struct hull_error **err)
{
	struct image_store *s = NULL;
	struct image_ref ref;
	_cleanup_free_ char *name = NULL;
	int r;

	r = image_ref_parse(arg, &ref, err);
	if (r < 0)
		return r;
	name = image_ref_string(&ref);
	r = image_store_open(NULL, &s, err);
	if (r < 0)
		goto out;
	if (ref.digest && !ref.tag) {
		/* By digest: the name a pull by digest wrote (it may name an index, resolved
		 * to our platform's image), else the blob itself. */
		if (image_store_resolve(s, name, ret_digest, NULL) == 0)
			r = 0;
		else if (!image_store_has_blob(s, ref.digest))
			r = hull_error_set(err, -ENOENT, "no image %s in the store", ref.digest);
		else
			*ret_digest = xstrdup(ref.digest);
	} else {
		_cleanup_free_ char *plain =
		    xasprintf("%s/%s:%s", ref.registry, ref.repository, ref.tag);
		r = image_store_resolve(s, plain, ret_digest, NULL);
		if (r < 0 && strcmp(plain, EMBEDDED_NAME) == 0) {
			/* The embedded image: loaded into the store on first use. */
			_cleanup_free_ char *arch = embedded_archive();
			_cleanup_strv_free_ char **names = NULL;
			if (arch && image_load(s, arch, &names, err) < 0) {
				r = hull_error_prefix(err, "embedded busybox image");
				goto out;
			}
			r = image_store_resolve(s, plain, ret_digest, NULL);
		}
		if (r < 0)
			r = hull_error_set(err, -ENOENT,
			                   "no image '%s' in the store (hull load, hull images)",
			                   plain);
		else if (ref.digest && strcmp(ref.digest, *ret_digest) != 0)
			r = hull_error_set(err, -ENOENT, "'%s' is %s, not %s", plain, *ret_digest,
			                   ref.digest);
	}
out:
	image_ref_done(&ref);
	if (r < 0) {
		image_store_close(s);
		return r;
	}
	*ret_store = s;
	if (ret_name)
		*ret_name = TAKE_PTR(name);
	return 0;
}

static int fail(struct hull_error *err)
{
	fprintf(stderr, "hull: %s\n", err->msg);
	hull_error_free(err);
	return EXIT_HULL_ERROR;
}

int cli_pull(int argc, char **argv)
{
	static const struct option opts[] = {{"quiet", no_argument, NULL, 'q'},
	                                     {"platform", required_argument, NULL, 'p'},
	                                     {"timeout", required_argument, NULL, 't'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	struct pull_opts po = {.os = "linux", .arch = "amd64"};
	struct hull_error *err = NULL;
	struct image_store *s = NULL;
	_cleanup_free_ char *name = NULL, *digest = NULL, *os = NULL;
	uint64_t ms;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			po.quiet = true;
			break;
		case 'p': {
			const char *slash = strchr(optarg, '/');
			if (!slash || !slash[1] || slash == optarg) {
				fprintf(stderr, "hull pull: --platform '%s': want OS/ARCH\n",
				        optarg);
				return EXIT_HULL_ERROR;
			}
			free(os);
			os = xstrndup(optarg, (size_t)(slash - optarg));
			po.os = os;
			po.arch = slash + 1;
			break;
		}
		case 't':
			if (parse_duration_ms(optarg, &ms) < 0 || ms < 1000 || ms > 3600000) {
				fprintf(stderr, "hull pull: --timeout '%s': want 1s to 1h\n",
				        optarg);
				return EXIT_HULL_ERROR;
			}
			po.timeout_s = (unsigned)(ms / 1000);
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
			        "usage: hull pull [-q] [--platform OS/ARCH] [--timeout DUR] "
			        "NAME[:TAG|@DIGEST]\n");
			return c == 'h' ? 0 : EXIT_HULL_ERROR;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: hull pull [-q] [--platform OS/ARCH] NAME[:TAG|@DIGEST]\n");
		return EXIT_HULL_ERROR;
	}
	if (image_store_open(NULL, &s, &err) < 0 ||
	    image_pull(s, argv[optind], &po, &name, &digest, &err) < 0) {
		image_store_close(s);
		return fail(err);
	}
	image_store_close(s);
	printf("%s\n", po.quiet ? digest : name);
	if (!po.quiet)
		printf("Digest: %s\n", digest);
	return 0;
}

int cli_load(int argc, char **argv)
{
	struct hull_error *err = NULL;
	struct image_store *s = NULL;
	_cleanup_strv_free_ char **names = NULL;
	const char *input = NULL;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+i:h")) != -1) {
		if (c == 'i') {
			input = optarg;
		} else {
			fprintf(c == 'h' ? stdout : stderr, "usage: hull load -i FILE|DIR\n");
			return c == 'h' ? 0 : EXIT_HULL_ERROR;
		}
	}
	if (!input || optind != argc) {
		fprintf(stderr, "usage: hull load -i FILE|DIR  (an OCI layout, oci-archive or "
		                "docker-archive)\n");
		return EXIT_HULL_ERROR;
	}
	if (image_store_open(NULL, &s, &err) < 0 || image_load(s, input, &names, &err) < 0) {
		image_store_close(s);
		return fail(err);
	}
	image_store_close(s);
	if (!names[0])
		fprintf(stderr, "hull: '%s' loaded, but it names no image\n", input);
	for (char **n = names; *n; n++)
		printf("Loaded image: %s\n", *n);
	return 0;
}

int cli_save(int argc, char **argv)
{
	struct hull_error *err = NULL;
	struct image_store *s = NULL;
	const char *out = NULL;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+o:h")) != -1) {
		if (c == 'o') {
			out = optarg;
		} else {
			fprintf(c == 'h' ? stdout : stderr, "usage: hull save -o FILE NAME...\n");
			return c == 'h' ? 0 : EXIT_HULL_ERROR;
		}
	}
	if (!out || optind >= argc) {
		fprintf(stderr, "usage: hull save -o FILE NAME...  (writes an oci-archive)\n");
		return EXIT_HULL_ERROR;
	}
	if (image_store_open(NULL, &s, &err) < 0 || image_save(s, argv + optind, out, &err) < 0) {
		image_store_close(s);
		return fail(err);
	}
	image_store_close(s);
	return 0;
}

int cli_images(int argc, char **argv)
{
	struct hull_error *err = NULL;
	struct image_store *s = NULL;
	_cleanup_strv_free_ char **names = NULL, **digests = NULL;
	bool quiet = argc > 1 && strcmp(argv[1], "-q") == 0;

	if (argc > (quiet ? 2 : 1)) {
		fprintf(stderr, "usage: hull images [-q]\n");
		return EXIT_HULL_ERROR;
	}
	if (image_store_open(NULL, &s, &err) < 0 ||
	    image_store_list(s, &names, &digests, &err) < 0) {
		image_store_close(s);
		return fail(err);
	}
	if (!quiet)
		printf("%-50s %-19s %s\n", "NAME", "DIGEST", "SIZE");
	for (size_t i = 0; names[i]; i++) {
		struct image_manifest m = {0};
		struct image_config cfg = {0};
		int64_t size = 0;
		if (quiet) {
			printf("%s\n", names[i]);
			continue;
		}
		if (image_store_load(s, digests[i], &m, &cfg, NULL) == 0) {
			for (size_t k = 0; k < m.n_entries; k++)
				size += m.entries[k].size;
			image_manifest_done(&m);
			image_config_done(&cfg);
		}
		printf("%-50s %.19s %.1f MB\n", names[i], digests[i], (double)size / 1e6);
	}
	image_store_close(s);
	return 0;
}

int cli_rmi(int argc, char **argv)
{
	struct hull_error *err = NULL;
	struct image_store *s = NULL;
	size_t freed = 0;
	int code = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: hull rmi NAME...\n");
		return EXIT_HULL_ERROR;
	}
	if (image_store_open(NULL, &s, &err) < 0)
		return fail(err);
	for (int i = 1; i < argc; i++) {
		struct image_ref ref;
		_cleanup_free_ char *name = NULL;
		if (image_ref_parse(argv[i], &ref, &err) < 0) {
			code = fail(err);
			continue;
		}
		name = image_ref_string(&ref);
		image_ref_done(&ref);
		if (image_store_untag(s, name, &err) < 0) {
			code = fail(err);
			continue;
		}
		printf("Untagged: %s\n", name);
	}
	/* What no name reaches any more goes with it (later, when sandboxes use images). */
	if (image_store_prune(s, &freed, &err) < 0) {
		if (err->code == -EBUSY) {
			fprintf(stderr, "hull: %s\n", err->msg);
			hull_error_free(err);
		} else {
			code = fail(err);
		}
	}
	image_store_close(s);
	return code;
}

static json_object *strv_json(char **l)
{
	if (!l)
		return NULL;
	json_object *a = json_object_new_array();
	for (; *l; l++)
		json_object_array_add(a, json_object_new_string(*l));
	return a;
}

int cli_image(int argc, char **argv)
{
	struct hull_error *err = NULL;
	struct image_store *s = NULL;

	if (argc == 2 && strcmp(argv[1], "prune") == 0) {
		size_t freed = 0;
		if (image_store_open(NULL, &s, &err) < 0 ||
		    image_store_prune(s, &freed, &err) < 0) {
			image_store_close(s);
			return fail(err);
		}
		image_store_close(s);
		printf("Removed %zu unused blobs and unpacked images\n", freed);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "inspect") == 0) {
		_cleanup_free_ char *name = NULL, *digest = NULL;
		struct image_manifest m = {0};
		struct image_config c = {0};
		if (cli_image_resolve(argv[2], &s, &name, &digest, &err) < 0 ||
		    image_store_load(s, digest, &m, &c, &err) < 0) {
			image_store_close(s);
			return fail(err);
		}
		json_object *o = json_object_new_object(), *layers = json_object_new_array();
		json_object_object_add(o, "name", json_object_new_string(name));
		json_object_object_add(o, "digest", json_object_new_string(digest));
		json_object_object_add(o, "os", json_object_new_string(c.os ? c.os : ""));
		json_object_object_add(o, "architecture",
		                       json_object_new_string(c.arch ? c.arch : ""));
		json_object_object_add(o, "entrypoint", strv_json(c.entrypoint));
		json_object_object_add(o, "cmd", strv_json(c.cmd));
		json_object_object_add(o, "env", strv_json(c.env));
		json_object_object_add(o, "working_dir",
		                       json_object_new_string(c.workdir ? c.workdir : ""));
		json_object_object_add(o, "user", json_object_new_string(c.user ? c.user : ""));
		json_object_object_add(o, "stop_signal",
		                       json_object_new_string(c.stop_signal ? c.stop_signal : ""));
		for (size_t i = 1; i < m.n_entries; i++) {
			json_object *l = json_object_new_object();
			json_object_object_add(l, "digest",
			                       json_object_new_string(m.entries[i].digest));
			json_object_object_add(l, "size", json_object_new_int64(m.entries[i].size));
			json_object_array_add(layers, l);
		}
		json_object_object_add(o, "layers", layers);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		                                           JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		image_manifest_done(&m);
		image_config_done(&c);
		image_store_close(s);
		return 0;
	}
	fprintf(stderr, "usage: hull image inspect NAME | hull image prune\n");
	return EXIT_HULL_ERROR;
}
