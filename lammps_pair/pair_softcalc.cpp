/* softcalc: pair_style softcalc (see pair_softcalc.h). */

#include "pair_softcalc.h"

#include "python_embed.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cstring>

using namespace LAMMPS_NS;
using SoftcalcPython::GilLock;
using SoftcalcPython::Ref;

namespace {
const char *const BRIDGE_MODULE = "softcalc.lammps.bridge";
const char *const BRIDGE_CLASS = "PairBridge";

const char *const CAPSULE_NAME = "softcalc.PairSoftcalc";
//: a rank whose ghosts outnumber its atoms by more than this is told what the shell costs
const double GHOST_WARNING_RATIO = 20.0;
//: the gather path on several ranks is told that decompose yes shares the work from this many atoms on
//: (measured on 2 ranks: per-layer exchange took about half the gathered step at 512 atoms, M3GNet and MACE)
const double GATHER_WARNING_ATOMS = 500.0;

// memoryview over a buffer the plugin owns (no copy)
PyObject *view(const void *data, size_t bytes, bool writable)
{
  return PyMemoryView_FromMemory(const_cast<char *>(static_cast<const char *>(data)),
                                 static_cast<Py_ssize_t>(bytes), writable ? PyBUF_WRITE : PyBUF_READ);
}

// exchange(rows, width) from Python: rows is a writable C-contiguous float64 buffer of
// (nlocal + nghost) x width values
PyObject *call_exchange(PyObject *capsule, PyObject *args, bool reverse)
{
  PyObject *rows = nullptr;
  int width = 0;
  if (!PyArg_ParseTuple(args, "Oi", &rows, &width)) return nullptr;
  auto *pair = static_cast<PairSoftcalc *>(PyCapsule_GetPointer(capsule, CAPSULE_NAME));
  if (pair == nullptr) return nullptr;
  Py_buffer buffer;
  if (PyObject_GetBuffer(rows, &buffer, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return nullptr;
  std::string failure;
  if (width < 0 || buffer.itemsize != static_cast<Py_ssize_t>(sizeof(double)) || buffer.format == nullptr ||
      std::string(buffer.format) != "d" || buffer.len < pair->exchange_bytes(width))
    failure = "an exchange needs a writable C-contiguous float64 array of (nlocal + nghost) x width values";
  else
    failure = pair->exchange(static_cast<double *>(buffer.buf), width, reverse);
  PyBuffer_Release(&buffer);
  if (!failure.empty()) {
    PyErr_SetString(PyExc_RuntimeError, failure.c_str());
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject *forward_exchange(PyObject *capsule, PyObject *args) { return call_exchange(capsule, args, false); }
PyObject *reverse_exchange(PyObject *capsule, PyObject *args) { return call_exchange(capsule, args, true); }

PyMethodDef FORWARD_EXCHANGE = {"forward_exchange", forward_exchange, METH_VARARGS,
                                "forward_exchange(rows, width): owners' rows into the ghost rows"};
PyMethodDef REVERSE_EXCHANGE = {"reverse_exchange", reverse_exchange, METH_VARARGS,
                                "reverse_exchange(rows, width): ghost rows added into their owners' rows"};
}    // namespace

PairSoftcalc::PairSoftcalc(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // gather path: the virial comes from the model's stress
  centroidstressflag = CENTROID_AVAIL;    // per-atom virials in the centroid form (softcalc.virial)
}

PairSoftcalc::~PairSoftcalc()
{
  release_bridge();
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairSoftcalc::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

void PairSoftcalc::check_units()
{
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR,
               std::string("pair_style softcalc requires 'units metal' (eV, Å, eV/Å, bar); this input "
                           "uses 'units ") + update->unit_style + "'. Fix: put 'units metal' first in the input");
}

/* pair_style softcalc <model> [correction FILE | scale LAMBDA] [device cpu|cuda] [dtype float32|float64]
                           [decompose no|yes|field] [check_model yes|no] */
void PairSoftcalc::settings(int narg, char **arg)
{
  check_units();
  const std::string usage = "Usage: pair_style softcalc <model> [correction FILE | scale LAMBDA] "
                            "[device cpu|cuda] [dtype float32|float64] [decompose no|yes|field] [check_model yes|no]";
  if (narg < 1) error->all(FLERR, "pair_style softcalc needs a model name or path. " + usage);
  model_ = arg[0];
  correction_.clear();
  dtype_.clear();
  device_ = "cpu";
  has_scale_ = false;
  decompose_requested_ = 0;
  check_model_ = true;
  for (int iarg = 1; iarg < narg; iarg += 2) {
    const std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "pair_style softcalc: keyword '" + key + "' needs a value. " + usage);
    const std::string value = arg[iarg + 1];
    if (key == "correction") {
      correction_ = value;
    } else if (key == "scale") {
      scale_ = utils::numeric(FLERR, value, false, lmp);
      has_scale_ = true;
    } else if (key == "device") {
      if (value != "cpu" && value.rfind("cuda", 0) != 0)
        error->all(FLERR, "pair_style softcalc: device must be cpu or cuda[:N], not '" + value + "'");
      device_ = value;
    } else if (key == "dtype") {
      if (value != "float32" && value != "float64")
        error->all(FLERR, "pair_style softcalc: dtype must be float32 or float64, not '" + value + "'");
      dtype_ = value;
    } else if (key == "decompose") {
      if (value != "no" && value != "yes" && value != "field")
        error->all(FLERR, "pair_style softcalc: decompose must be no, yes or field, not '" + value + "'");
      decompose_requested_ = value == "field" ? 2 : (value == "yes" ? 1 : 0);
    } else if (key == "check_model") {
      check_model_ = utils::logical(FLERR, value, false, lmp) == 1;
    } else {
      error->all(FLERR, "pair_style softcalc: unknown keyword '" + key + "'. " + usage);
    }
  }
  if (has_scale_ && !correction_.empty())
    error->all(FLERR, "pair_style softcalc: give either 'correction FILE' or 'scale LAMBDA', not both");
}

/* pair_coeff * * El1 El2 ... : one chemical element per atom type */
void PairSoftcalc::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg < 2 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for pair_style softcalc must be 'pair_coeff * * El1 El2 ...'");
  if (narg != 2 + ntypes)
    error->all(FLERR, "pair_coeff * * for pair_style softcalc needs one element per atom type: the box has " +
                          std::to_string(ntypes) + " type(s) but " + std::to_string(narg - 2) +
                          " element(s) were given");
  std::vector<std::string> elements(arg + 2, arg + narg);
  create_bridge(elements);
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairSoftcalc::init_style()
{
  check_units();
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style softcalc requires atom IDs (atom_modify id yes)");
  if (decompose_ && force->newton_pair == 0)
    error->all(FLERR, "pair_style softcalc decompose yes|field requires newton pair on: forces on ghost atoms are "
                      "summed onto their owners by LAMMPS' reverse communication. Fix: 'newton on', or "
                      "'decompose no'");
  if (!decompose_ && atom->natoms > MAXSMALLINT)
    error->all(FLERR, "pair_style softcalc: too many atoms for the gather path. Fix: decompose yes");
  reported_ranks_ = false;
  // no neighbour list: the model builds its own graph from the gathered box or the local + ghost cluster
}

/* ghost shell: one exchange cutoff with per-layer exchange, else the receptive field, so that local
   atoms' energies are exact; the gather path's cutoff is the model's */
double PairSoftcalc::init_one(int, int)
{
  if (layers_) return exchange_cutoff_;
  return decompose_ ? receptive_field_ : model_cutoff_;
}

/* any rank fails with message ("" = success); every rank then stops with the lowest failing rank's error */
void PairSoftcalc::fail_all_if(const std::string &message)
{
  const int mine = message.empty() ? comm->nprocs : comm->me;
  int first = comm->nprocs;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world);
  if (first == comm->nprocs) return;
  int length = static_cast<int>(message.size());
  MPI_Bcast(&length, 1, MPI_INT, first, world);
  std::string text(message);
  text.resize(length);
  MPI_Bcast(&text[0], length, MPI_CHAR, first, world);
  error->all(FLERR, "pair_style softcalc: " + text);
}

/* rank 0 loads the model; with decompose yes (and per-atom energies) every other rank too */
void PairSoftcalc::create_bridge(const std::vector<std::string> &elements)
{
  release_bridge();
  bool per_atom_energies = false;
  fail_all_if(comm->me == 0 ? new_bridge(elements, per_atom_energies) : std::string());
  double shared[5] = {model_cutoff_, receptive_field_, per_atom_energies ? 1.0 : 0.0, exchange_cutoff_,
                       static_cast<double>(exchange_width_)};
  MPI_Bcast(shared, 5, MPI_DOUBLE, 0, world);
  model_cutoff_ = shared[0];
  receptive_field_ = shared[1];
  exchange_cutoff_ = shared[3];
  exchange_width_ = static_cast<int>(shared[4]);
  decompose_ = decompose_requested_ != 0 && shared[2] != 0.0;
  if (decompose_requested_ != 0 && !decompose_ && comm->me == 0)
    error->warning(FLERR, "pair_style softcalc: model " + model_ + " gives no per-atom energies, so decompose "
                          "falls back to the gather path (all atoms evaluated on rank 0)");
  layers_ = decompose_ && decompose_requested_ == 1 && exchange_cutoff_ > 0.0;
  if (decompose_requested_ == 1 && decompose_ && !layers_ && comm->me == 0)
    error->warning(FLERR, "pair_style softcalc: model " + model_ + " has no per-layer exchange, so decompose "
                          "yes uses a ghost shell of its whole receptive field (" +
                          std::to_string(receptive_field_) + " A)");
  if (decompose_) fail_all_if(comm->me != 0 ? new_bridge(elements, per_atom_energies) : std::string());
  if (layers_) fail_all_if(connect_exchange());
  comm_forward = comm_reverse = layers_ ? exchange_width_ : 0;
  no_virial_fdotr_compute = decompose_ ? 0 : 1;
}

/* this rank's bridge gets forward_exchange and reverse_exchange, bound to this pair style */
std::string PairSoftcalc::connect_exchange()
{
  GilLock gil;
  Ref capsule(PyCapsule_New(this, CAPSULE_NAME, nullptr));
  Ref forward(capsule ? PyCFunction_New(&FORWARD_EXCHANGE, capsule.get()) : nullptr);
  Ref reverse(forward ? PyCFunction_New(&REVERSE_EXCHANGE, capsule.get()) : nullptr);
  Ref out(reverse ? PyObject_CallMethod(static_cast<PyObject *>(bridge_), "connect", "OO", forward.get(),
                                        reverse.get())
                  : nullptr);
  return SoftcalcPython::take_error();
}

Py_ssize_t PairSoftcalc::exchange_bytes(int width) const
{
  return static_cast<Py_ssize_t>(atom->nlocal + atom->nghost) * width * static_cast<Py_ssize_t>(sizeof(double));
}

std::string PairSoftcalc::exchange(double *rows, int width, bool reverse)
{
  if (width > comm_forward)
    return "a feature exchange of " + std::to_string(width) + " values per atom exceeds the " +
        std::to_string(comm_forward) + " the pair style reserved (the model's exchange width)";
  exchange_rows_ = rows;
  exchange_stride_ = width;
  if (reverse)
    comm->reverse_comm(this, width);
  else
    comm->forward_comm(this, width);
  exchange_rows_ = nullptr;
  return "";
}

int PairSoftcalc::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  const int w = exchange_stride_;
  for (int i = 0; i < n; i++) std::memcpy(buf + i * w, exchange_rows_ + static_cast<size_t>(list[i]) * w, w * sizeof(double));
  return n * w;
}

void PairSoftcalc::unpack_forward_comm(int n, int first, double *buf)
{
  std::memcpy(exchange_rows_ + static_cast<size_t>(first) * exchange_stride_, buf,
              static_cast<size_t>(n) * exchange_stride_ * sizeof(double));
}

int PairSoftcalc::pack_reverse_comm(int n, int first, double *buf)
{
  std::memcpy(buf, exchange_rows_ + static_cast<size_t>(first) * exchange_stride_,
              static_cast<size_t>(n) * exchange_stride_ * sizeof(double));
  return n * exchange_stride_;
}

void PairSoftcalc::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int w = exchange_stride_;
  for (int i = 0; i < n; i++) {
    double *row = exchange_rows_ + static_cast<size_t>(list[i]) * w;
    for (int k = 0; k < w; k++) row[k] += buf[i * w + k];
  }
}

/* once per run: a rank with many more ghosts than atoms (or none) is named, with what it costs */
void PairSoftcalc::report_ghosts()
{
  reported_ranks_ = true;
  const double mine[2] = {static_cast<double>(atom->nlocal), static_cast<double>(atom->nghost)};
  std::vector<double> all(2 * comm->nprocs);
  MPI_Gather(mine, 2, MPI_DOUBLE, all.data(), 2, MPI_DOUBLE, 0, world);
  if (comm->me != 0) return;
  std::string counts;
  for (int p = 0; p < comm->nprocs && p < 16; p++)
    counts += fmt::format("{}{:.0f}/{:.0f}", p > 0 ? " " : "", all[2 * p], all[2 * p + 1]);
  utils::logmesg(lmp, "pair_style softcalc decompose {}: ghost cutoff {:.2f} A + skin; atoms/ghosts per rank: {}{}\n",
                 layers_ ? "yes (per-layer exchange)" : "field (receptive field)",
                 layers_ ? exchange_cutoff_ : receptive_field_, counts, comm->nprocs > 16 ? " ..." : "");
  int empty = 0, heavy = 0;
  double worst = 0.0, ghosts = 0.0, atoms = 0.0, busiest = 0.0, most_owned = 0.0;
  for (int p = 0; p < comm->nprocs; p++) {
    atoms += all[2 * p];
    ghosts += all[2 * p + 1];
    busiest = std::max(busiest, all[2 * p] + all[2 * p + 1]);
    most_owned = std::max(most_owned, all[2 * p]);
    if (all[2 * p] == 0.0) {
      empty++;
    } else if (all[2 * p + 1] > GHOST_WARNING_RATIO * all[2 * p]) {
      heavy++;
      worst = std::max(worst, all[2 * p + 1] / all[2 * p]);
    }
  }
  if (empty == 0 && heavy == 0) return;
  const double shell = layers_ ? exchange_cutoff_ : receptive_field_;
  std::string text = "pair_style softcalc decompose: ";
  if (empty > 0)
    text += fmt::format("{} of {} subdomains hold no atoms", empty, comm->nprocs);
  if (heavy > 0)
    text += fmt::format("{}{} rank(s) hold up to {:.0f}x more ghost atoms than atoms", empty > 0 ? "; " : "",
                        heavy, worst);
  if (layers_) {
    // per-layer exchange computes nothing for ghosts beyond their share of the edges: a rank's time
    // follows its own atoms first, so the busiest owner bounds the step from below
    const double share = most_owned / std::max(atoms, 1.0);
    text += fmt::format(" (ghost shell {:.1f} A: the busiest rank owns {:.0f}% of the atoms, so a step takes "
                        "at least {:.2f}x the time of one rank evaluating every atom, plus its ghosts' share "
                        "and the exchanges). ",
                        shell, 100.0 * share, share);
  } else {
    // the receptive-field shell evaluates ghosts like atoms; the gather path evaluates all atoms once
    text += fmt::format(" (ghost shell {:.1f} A: the ranks evaluate {:.0f} atoms in all for {:.0f}, so the "
                        "busiest rank may take about {:.1f}x the time of one rank evaluating every atom). ",
                        shell, atoms + ghosts, atoms, busiest / std::max(atoms, 1.0));
  }
  text += "Fix: fewer ranks; 'processors' or 'balance' so that every subdomain holds atoms; "
          "decompose no for small systems";
  error->warning(FLERR, text);
}

/* gather path on several ranks: rank 0 evaluates every atom while the others wait; say so, and warn
   when the model has per-layer exchange and the system is large enough for decompose yes to pay */
void PairSoftcalc::report_gather()
{
  reported_ranks_ = true;
  if (comm->nprocs == 1 || comm->me != 0) return;
  const double natoms = static_cast<double>(atom->natoms);
  utils::logmesg(lmp, "pair_style softcalc decompose no: rank 0 evaluates all {:.0f} atoms, the other {} rank(s) wait\n",
                 natoms, comm->nprocs - 1);
  if (exchange_cutoff_ > 0.0 && natoms >= GATHER_WARNING_ATOMS)
    error->warning(FLERR, fmt::format("pair_style softcalc decompose no on {} ranks: rank 0 evaluates all {:.0f} "
                                      "atoms while the other ranks wait. Fix: 'decompose yes' shares the work "
                                      "with per-layer exchange (exact; on 2 ranks it took about half the "
                                      "gathered step for 512 to 4096 atoms); keep decompose no for small "
                                      "systems or a single rank",
                                      comm->nprocs, natoms));
}

/* PairBridge(model, elements, **options) on this rank; returns "" or the error */
std::string PairSoftcalc::new_bridge(const std::vector<std::string> &elements, bool &per_atom_energies)
{
  std::string failure = SoftcalcPython::ensure_interpreter();
  if (!failure.empty()) return failure;
  GilLock gil;
  Ref module(PyImport_ImportModule(BRIDGE_MODULE));
  Ref cls(module ? PyObject_GetAttrString(module.get(), BRIDGE_CLASS) : nullptr);
  Ref names(PyList_New(0));
  for (const auto &el : elements) {
    Ref item(PyUnicode_FromString(el.c_str()));
    PyList_Append(names.get(), item.get());
  }
  Ref args(Py_BuildValue("(sO)", model_.c_str(), names.get()));
  Ref kwargs(PyDict_New());
  Ref device(PyUnicode_FromString(device_.c_str()));
  PyDict_SetItemString(kwargs.get(), "device", device.get());
  if (!correction_.empty()) {
    Ref path(PyUnicode_FromString(correction_.c_str()));
    PyDict_SetItemString(kwargs.get(), "correction", path.get());
  }
  if (has_scale_) {
    Ref scale(PyFloat_FromDouble(scale_));
    PyDict_SetItemString(kwargs.get(), "scale", scale.get());
  }
  if (!dtype_.empty()) {
    Ref dtype(PyUnicode_FromString(dtype_.c_str()));
    PyDict_SetItemString(kwargs.get(), "dtype", dtype.get());
  }
  if (!check_model_) PyDict_SetItemString(kwargs.get(), "check_model", Py_False);
  PyObject *bridge = cls ? PyObject_Call(cls.get(), args.get(), kwargs.get()) : nullptr;
  Ref cutoff(bridge ? PyObject_GetAttrString(bridge, "cutoff") : nullptr);
  Ref field(cutoff ? PyObject_GetAttrString(bridge, "receptive_field") : nullptr);
  Ref per_atom(field ? PyObject_GetAttrString(bridge, "has_per_atom_energies") : nullptr);
  Ref xcut(per_atom ? PyObject_GetAttrString(bridge, "exchange_cutoff") : nullptr);
  Ref xwidth(xcut ? PyObject_GetAttrString(bridge, "exchange_width") : nullptr);
  if (xwidth) {
    model_cutoff_ = PyFloat_AsDouble(cutoff.get());
    receptive_field_ = PyFloat_AsDouble(field.get());
    per_atom_energies = PyObject_IsTrue(per_atom.get()) == 1;
    exchange_cutoff_ = PyFloat_AsDouble(xcut.get());
    exchange_width_ = static_cast<int>(PyLong_AsLong(xwidth.get()));
  }
  failure = SoftcalcPython::take_error();
  if (failure.empty())
    bridge_ = bridge;
  else
    Py_XDECREF(bridge);
  if (!failure.empty() && !module) failure += " (is softcalc installed in the embedded Python?)";
  return failure;
}

void PairSoftcalc::release_bridge()
{
  if (bridge_ == nullptr) return;
#if PY_VERSION_HEX >= 0x030D0000
  const bool finalizing = Py_IsFinalizing();
#else
  const bool finalizing = _Py_IsFinalizing();
#endif
  if (Py_IsInitialized() && !finalizing) {
    GilLock gil;
    Py_DECREF(static_cast<PyObject *>(bridge_));
  }
  bridge_ = nullptr;
}

/* Rank 0: call PairBridge.compute on positions ordered by atom ID.
   result = energy (eV) and virial xx yy zz xy xz yz (eV). Returns "" or the error. */
std::string PairSoftcalc::evaluate(const std::vector<double> &positions, const std::vector<int> &types,
                                   std::vector<double> &forces, std::vector<double> &energies,
                                   std::vector<double> &virials, double result[7])
{
  if (bridge_ == nullptr) return "no model loaded: pair_coeff * * El1 El2 ... must succeed before a run";
  GilLock gil;
  const Py_ssize_t n = static_cast<Py_ssize_t>(types.size());
  double *h = domain->h;    // xprd yprd zprd yz xz xy
  // LAMMPS' (restricted triclinic) cell: a = (lx,0,0), b = (xy,ly,0), c = (xz,yz,lz)
  Ref cell(Py_BuildValue("(ddddddddd)", h[0], 0.0, 0.0, h[5], h[1], 0.0, h[4], h[3], h[2]));
  Ref pbc(Py_BuildValue("(OOO)", domain->xperiodic ? Py_True : Py_False,
                        domain->yperiodic ? Py_True : Py_False, domain->zperiodic ? Py_True : Py_False));
  Ref pos(view(positions.data(), 3 * n * sizeof(double), false));
  Ref typ(view(types.data(), n * sizeof(int), false));
  Ref frc(view(forces.data(), 3 * n * sizeof(double), true));
  PyObject *eng = Py_None;
  Ref eng_view(eflag_atom ? view(energies.data(), n * sizeof(double), true) : nullptr);
  if (eng_view) eng = eng_view.get();
  PyObject *vir = Py_None;
  Ref vir_view(virials.empty() ? nullptr : view(virials.data(), virials.size() * sizeof(double), true));
  if (vir_view) vir = vir_view.get();
  Ref out(PyObject_CallMethod(static_cast<PyObject *>(bridge_), "compute", "OOOOOOiO", pos.get(), typ.get(),
                              cell.get(), pbc.get(), frc.get(), eng, vflag_global ? 1 : 0, vir));
  if (out && !PyArg_ParseTuple(out.get(), "ddddddd", &result[0], &result[1], &result[2], &result[3],
                               &result[4], &result[5], &result[6]))
    PyErr_SetString(PyExc_TypeError, "PairBridge.compute must return 7 floats (energy, virial[6])");
  return SoftcalcPython::take_error();
}

/* This rank: PairBridge.compute_local on local + ghost atoms. energy = the local atoms' energy (eV);
   forces (3 * nall) and energies (nlocal, when eflag_atom) are filled. Returns "" or the error. */
std::string PairSoftcalc::evaluate_cluster(const std::vector<double> &positions, const std::vector<int> &types,
                                           int nlocal, std::vector<double> &forces,
                                           std::vector<double> &energies, std::vector<double> &virials,
                                           double &energy)
{
  if (bridge_ == nullptr) return "no model loaded: pair_coeff * * El1 El2 ... must succeed before a run";
  GilLock gil;
  const size_t nall = types.size();
  Ref pos(view(positions.data(), 3 * nall * sizeof(double), false));
  Ref typ(view(types.data(), nall * sizeof(int), false));
  Ref frc(view(forces.data(), 3 * nall * sizeof(double), true));
  PyObject *eng = Py_None;
  Ref eng_view(eflag_atom ? view(energies.data(), nlocal * sizeof(double), true) : nullptr);
  if (eng_view) eng = eng_view.get();
  PyObject *vir = Py_None;
  Ref vir_view(virials.empty() ? nullptr : view(virials.data(), virials.size() * sizeof(double), true));
  if (vir_view) vir = vir_view.get();
  Ref out(PyObject_CallMethod(static_cast<PyObject *>(bridge_), "compute_local", "OOiOOO", pos.get(), typ.get(),
                              nlocal, frc.get(), eng, vir));
  if (out) energy = PyFloat_AsDouble(out.get());
  return SoftcalcPython::take_error();
}

void PairSoftcalc::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (decompose_)
    compute_decomposed();
  else
    compute_gathered();
}

/* each rank evaluates its local atoms' energy on the cluster of local + ghost atoms */
void PairSoftcalc::compute_decomposed()
{
  const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
  std::vector<double> positions(3 * nall), forces(3 * nall, 0.0), energies(eflag_atom ? nlocal : 0, 0.0);
  std::vector<double> virials(vflag_atom || cvflag_atom ? 9 * nall : 0, 0.0);
  std::vector<int> types(atom->type, atom->type + nall);
  for (int i = 0; i < nall; i++)
    for (int k = 0; k < 3; k++) positions[3 * i + k] = atom->x[i][k] - domain->boxlo[k];
  double energy = 0.0;
  if (!reported_ranks_) report_ghosts();
  // with per-layer exchange every rank runs the exchanges, a rank without atoms included
  const bool evaluate = nlocal > 0 || layers_;
  fail_all_if(evaluate ? evaluate_cluster(positions, types, nlocal, forces, energies, virials, energy) : "");

  double **f = atom->f;
  for (int i = 0; i < nall; i++)    // ghost forces reach their owners through reverse communication
    for (int k = 0; k < 3; k++) f[i][k] += forces[3 * i + k];
  if (eflag_atom)
    for (int i = 0; i < nlocal; i++) eatom[i] += energies[i];
  if (!virials.empty()) tally_atom_virials(virials.data(), nall, nullptr);    // ghosts: reverse-communicated
  if (eflag_global) eng_vdwl += energy;
  if (vflag_fdotr) virial_fdotr_compute();
}

/* per-atom virials (9 per atom: xx yy zz xy xz yz yx zx zy, eV) into vatom (symmetrised) and cvatom;
   atom i reads row index[i] (row i when index is null) */
void PairSoftcalc::tally_atom_virials(const double *rows, int n, const tagint *index)
{
  for (int i = 0; i < n; i++) {
    const double *w = rows + 9 * (index ? index[i] : i);
    if (vflag_atom) {
      for (int k = 0; k < 3; k++) vatom[i][k] += w[k];
      for (int k = 3; k < 6; k++) vatom[i][k] += 0.5 * (w[k] + w[k + 3]);
    }
    if (cvflag_atom)
      for (int k = 0; k < 9; k++) cvatom[i][k] += w[k];
  }
}

/* all atoms on rank 0, ordered by atom ID; results broadcast */
void PairSoftcalc::compute_gathered()
{
  const int me = comm->me, nprocs = comm->nprocs, nlocal = atom->nlocal;
  if (!reported_ranks_) report_gather();

  // gather IDs, types and positions of all local atoms on rank 0
  std::vector<int> counts(nprocs), displs(nprocs), counts3(nprocs), displs3(nprocs);
  MPI_Gather(&nlocal, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  int ntotal = 0;
  if (me == 0)
    for (int p = 0; p < nprocs; p++) {
      displs[p] = ntotal;
      displs3[p] = 3 * ntotal;
      counts3[p] = 3 * counts[p];
      ntotal += counts[p];
    }
  MPI_Bcast(&ntotal, 1, MPI_INT, 0, world);

  std::vector<tagint> tag_local(atom->tag, atom->tag + nlocal);
  std::vector<int> type_local(atom->type, atom->type + nlocal);
  std::vector<double> x_local(3 * nlocal);
  for (int i = 0; i < nlocal; i++)
    for (int k = 0; k < 3; k++) x_local[3 * i + k] = atom->x[i][k];
  std::vector<tagint> tag_all(me == 0 ? ntotal : 0);
  std::vector<int> type_all(me == 0 ? ntotal : 0);
  std::vector<double> x_all(me == 0 ? 3 * ntotal : 0);
  MPI_Gatherv(tag_local.data(), nlocal, MPI_LMP_TAGINT, tag_all.data(), counts.data(), displs.data(),
              MPI_LMP_TAGINT, 0, world);
  MPI_Gatherv(type_local.data(), nlocal, MPI_INT, type_all.data(), counts.data(), displs.data(), MPI_INT, 0,
              world);
  MPI_Gatherv(x_local.data(), 3 * nlocal, MPI_DOUBLE, x_all.data(), counts3.data(), displs3.data(),
              MPI_DOUBLE, 0, world);

  // rank 0: order by atom ID (IDs must be 1..N), evaluate the model
  const bool atom_virials = vflag_atom || cvflag_atom;
  std::vector<double> forces(3 * ntotal, 0.0), energies(eflag_atom ? ntotal : 0, 0.0);
  std::vector<double> virials(atom_virials ? 9 * ntotal : 0, 0.0);
  double result[7] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  std::string failure;
  if (me == 0) {
    std::vector<double> positions(3 * ntotal);
    std::vector<int> types(ntotal, 0);
    for (int i = 0; i < ntotal && failure.empty(); i++) {
      const tagint id = tag_all[i];
      if (id < 1 || id > ntotal || types[id - 1] != 0) {
        failure = "atom IDs must run from 1 to the number of atoms without gaps. Fix: reset_atoms id";
        break;
      }
      types[id - 1] = type_all[i];
      for (int k = 0; k < 3; k++) positions[3 * (id - 1) + k] = x_all[3 * i + k] - domain->boxlo[k];
    }
    if (failure.empty()) failure = evaluate(positions, types, forces, energies, virials, result);
  }
  fail_all_if(failure);

  MPI_Bcast(result, 7, MPI_DOUBLE, 0, world);
  MPI_Bcast(forces.data(), 3 * ntotal, MPI_DOUBLE, 0, world);
  if (eflag_atom) MPI_Bcast(energies.data(), ntotal, MPI_DOUBLE, 0, world);
  if (atom_virials) MPI_Bcast(virials.data(), 9 * ntotal, MPI_DOUBLE, 0, world);

  double **f = atom->f;
  for (int i = 0; i < nlocal; i++) {
    const tagint id = atom->tag[i] - 1;
    for (int k = 0; k < 3; k++) f[i][k] += forces[3 * id + k];
    if (eflag_atom) eatom[i] += energies[id];
  }
  if (atom_virials) {
    std::vector<tagint> rows(nlocal);
    for (int i = 0; i < nlocal; i++) rows[i] = atom->tag[i] - 1;
    tally_atom_virials(virials.data(), nlocal, rows.data());
  }
  if (me == 0) {    // global tallies are summed over ranks: count them once
    if (eflag_global) eng_vdwl += result[0];
    if (vflag_global)
      for (int k = 0; k < 6; k++) virial[k] += result[1 + k];
  }
}
