/* softcalc: pair_style softcalc, a softening-corrected universal ML potential evaluated in Python.

   pair_style softcalc <model> [correction FILE | scale LAMBDA] [device cpu|cuda] [dtype float32|float64]
                               [decompose no|yes|field]
   pair_coeff * * El1 El2 ...          (one element per atom type; units metal)

   decompose no (default, the gather path): every step the local atoms of all ranks are gathered on
   rank 0 (ordered by atom ID), evaluated with softcalc.SoftCorrectedCalc through
   softcalc.lammps.bridge.PairBridge, and energy, forces, global virial and per-atom energies are
   broadcast back. Correct on any number of ranks, but only rank 0 evaluates the model.

   decompose yes (domain decomposition, per-layer exchange): for models that support it (MACE,
   M3GNet, TensorNet) the ghost cutoff is one interaction cutoff (M3GNet: twice its three-body
   cutoff); every rank evaluates its local + ghost atoms as a non-periodic cluster, and before each
   message-passing layer the ghost atoms' node features are replaced by their owners' (forward
   communication); in the backward pass the gradients of the ghost features go back to their owners
   (reverse communication). Energies, forces and virials equal the serial run. All ranks take part
   in every exchange, so a rank with no atoms still runs the exchanges (with no data).

   decompose field (and decompose yes for models without per-layer exchange, e.g. CHGNet): the ghost
   cutoff is the model's receptive field (n_message_passing * cutoff) and no features are exchanged:
   each rank evaluates its local + ghost atoms as a non-periodic cluster, weighting per-atom energies
   by the correction's lambda for local atoms and 0 for ghosts. Forces on ghosts are summed onto their owners by LAMMPS (needs newton pair on); the
   virial is sum r_i . f_i over local and ghost atoms (fdotr). Needs a model with per-atom energies;
   other models fall back to the gather path with a warning.

   Per-atom virials (compute stress/atom, centroid/stress/atom, heat/flux) are the centroid virials
   W_i = sum_j r_ij (x) f_ij of softcalc.virial: on the decomposed path from the local + ghost cluster
   (ghost rows are summed onto their owners by the computes' reverse communication), on the gather
   path from the box unfolded to one exchange cutoff on rank 0 (one receptive field for CHGNet); on
   the steps that ask for them the gather path then takes energy and forces from that evaluation too
   (equal to the periodic one to round-off). */

#ifndef SOFTCALC_PAIR_SOFTCALC_H
#define SOFTCALC_PAIR_SOFTCALC_H

#include "pair.h"
#include "python_embed.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairSoftcalc : public Pair {
 public:
  explicit PairSoftcalc(class LAMMPS *);
  ~PairSoftcalc() override;

  void compute(int eflag, int vflag) override;
  int pack_forward_comm(int n, int *list, double *buf, int pbc_flag, int *pbc) override;
  void unpack_forward_comm(int n, int first, double *buf) override;
  int pack_reverse_comm(int n, int first, double *buf) override;
  void unpack_reverse_comm(int n, int *list, double *buf) override;
  // per-layer exchange, called from Python: rows (nlocal + nghost) x width of node features; forward
  // copies owners' rows into the ghost rows, reverse adds the ghost rows into their owners' rows.
  // Returns "" or the error.
  std::string exchange(double *rows, int width, bool reverse);
  // bytes of the rows an exchange of this width needs
  Py_ssize_t exchange_bytes(int width) const;
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
  int decompose_requested_ = 0;         // keyword decompose: 0 no, 1 yes, 2 field
  bool check_model_ = true;             // keyword check_model no: accept a correction for any model
  bool decompose_ = false;              // decomposed path in use (requested and the model allows it)
  bool layers_ = false;                 // decomposed path with per-layer exchange
  double exchange_cutoff_ = 0.0;        // Å, ghost shell of the per-layer exchange (0: not supported)
  int exchange_width_ = 0;              // most doubles per atom one exchange sends
  double *exchange_rows_ = nullptr;     // the rows of the exchange in progress
  int exchange_stride_ = 0;             // their width
  bool reported_ranks_ = false;        // the rank layout was logged (once per run)
  double model_cutoff_ = 0.0;           // Å, the model's cutoff (the gather path's pair cutoff)
  double receptive_field_ = 0.0;        // Å, n_message_passing * cutoff (the decomposed ghost shell)
  void *bridge_ = nullptr;    // PyObject *: softcalc.lammps.bridge.PairBridge (rank 0; all ranks decomposed)

  void allocate();
  void check_units();
  void create_bridge(const std::vector<std::string> &elements);
  std::string new_bridge(const std::vector<std::string> &elements, bool &per_atom_energies);
  void report_ghosts();
  void report_gather();
  std::string connect_exchange();
  void release_bridge();
  void fail_all_if(const std::string &message);
  void compute_gathered();
  void compute_decomposed();
  std::string evaluate(const std::vector<double> &positions, const std::vector<int> &types,
                       std::vector<double> &forces, std::vector<double> &energies,
                       std::vector<double> &virials, double result[7]);
  std::string evaluate_cluster(const std::vector<double> &positions, const std::vector<int> &types,
                               int nlocal, std::vector<double> &forces, std::vector<double> &energies,
                               std::vector<double> &virials, double &energy);
  void tally_atom_virials(const double *rows, int n, const tagint *index);
};

}    // namespace LAMMPS_NS

#endif
