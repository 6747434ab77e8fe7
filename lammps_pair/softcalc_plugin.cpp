/* softcalc: registers pair_style softcalc with LAMMPS (`plugin load softcalcplugin.so`). */

#include "lammpsplugin.h"
#include "pair_softcalc.h"

using namespace LAMMPS_NS;

#ifndef SOFTCALC_LAMMPS_VERSION
#error "SOFTCALC_LAMMPS_VERSION (e.g. \"22 Jul 2025\") must be defined by the build"
#endif

static void *pair_softcalc_creator(void *lmp)
{
  return new PairSoftcalc(static_cast<LAMMPS *>(lmp));
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = reinterpret_cast<lammpsplugin_regfunc>(regfunc);
  plugin.version = SOFTCALC_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "softcalc";
  plugin.info = "softcalc pair style: softening-corrected universal ML potentials (CHGNet, M3GNet, MACE)";
  plugin.author = "softcalc developers";
  plugin.creator.v1 = &pair_softcalc_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
