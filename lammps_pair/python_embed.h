/* softcalc: the embedded Python interpreter behind pair_style softcalc.

   Inside a Python process (the lammps Python module) the running interpreter is reused; from the
   `lmp` executable one is started with the Python that built the plugin (or $SOFTCALC_PYTHON), so
   its virtual environment, and softcalc in it, are importable. */

#ifndef SOFTCALC_PYTHON_EMBED_H
#define SOFTCALC_PYTHON_EMBED_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>

namespace SoftcalcPython {

// Start the interpreter unless one runs already. Returns "" on success, else the reason.
std::string ensure_interpreter();

// Holds the GIL for its lifetime (LAMMPS may be called from Python with the GIL released).
class GilLock {
 public:
  GilLock() : state_(PyGILState_Ensure()) {}
  ~GilLock() { PyGILState_Release(state_); }
  GilLock(const GilLock &) = delete;
  GilLock &operator=(const GilLock &) = delete;

 private:
  PyGILState_STATE state_;
};

// Owning reference to a Python object (decref on scope exit).
class Ref {
 public:
  explicit Ref(PyObject *obj = nullptr) : obj_(obj) {}
  ~Ref() { Py_XDECREF(obj_); }
  Ref(const Ref &) = delete;
  Ref &operator=(const Ref &) = delete;
  PyObject *get() const { return obj_; }
  explicit operator bool() const { return obj_ != nullptr; }

 private:
  PyObject *obj_;
};

// The pending Python exception as "Type: message" (clears it); "" when none is set.
std::string take_error();

}    // namespace SoftcalcPython

#endif
