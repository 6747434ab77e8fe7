/* softcalc: pair_style softcalc, a softening-corrected universal ML potential evaluated in Python.

   pair_style softcalc <model> [correction FILE | scale LAMBDA] [device cpu|cuda] [dtype float32|float64]
   pair_coeff * * El1 El2 ...          (one element per atom type; units metal)

   Every step the local atoms of all ranks are gathered on rank 0 (ordered by atom ID), evaluated with
   softcalc.SoftCorrectedCalc through softcalc.lammps.bridge.PairBridge, and energy, forces, global
   virial and per-atom energies are broadcast back. */

#ifndef SOFTCALC_PAIR_SOFTCALC_H
#define SOFTCALC_PAIR_SOFTCALC_H

#include "pair.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairSoftcalc : public Pair {
 public:
  explicit PairSoftcalc(class LAMMPS *);
  ~PairSoftcalc() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;

 private:
  std::string model_;            // model name or weights path
  std::string correction_;       // correction JSON path ("" for none)
  std::string device_ = "cpu";
  std::string dtype_;            // "" lets the plugin choose
  double scale_ = 1.0;
  bool has_scale_ = false;
  double model_cutoff_ = 0.0;    // Å, from the model (sets the ghost/neighbour cutoff)
  void *bridge_ = nullptr;       // PyObject *: softcalc.lammps.bridge.PairBridge (rank 0 only)
  bool warned_vatom_ = false;

  void allocate();
  void check_units();
  void create_bridge(const std::vector<std::string> &elements);
  void release_bridge();
  void fail_all_if(const std::string &root_message);
  std::string evaluate(const std::vector<double> &positions, const std::vector<int> &types,
                       std::vector<double> &forces, std::vector<double> &energies,
                       double result[7]);
};

}    // namespace LAMMPS_NS

#endif
